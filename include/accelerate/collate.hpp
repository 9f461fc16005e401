// Collation: turning a list of samples into one batch (PyTorch's collate_fn). The default stacks each named
// tensor; pad_collate pads variable-length sequences to the batch's longest and builds the attention mask (HF's
// DataCollatorWithPadding).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <accelerate/batch.hpp>

namespace accelerate {

/// Samples -> one batch. Called on the loader's worker threads: it must not touch shared state unguarded.
using Collate = std::function<Batch(const std::vector<Batch>& samples)>;

/// Stacks each field along a new dim 0 (PyTorch's default_collate for tensors). Every sample must have the same
/// fields with the same shapes; ConfigError naming the field and the two shapes otherwise.
Batch default_collate(const std::vector<Batch>& samples);

struct PadOptions {
  /// The value each field is padded with; fields not named here pad with 0 (HF pads labels with -100, the
  /// ignore_index of cross_entropy: {{"labels", -100}}).
  std::map<std::string, double> pad_values;
  /// Padded length rounded up to a multiple of this (8 or 64 keep tensor cores busy); 1: the longest sample.
  int64_t pad_to_multiple_of = 1;
  /// The field whose lengths make the attention mask (1 for real tokens, 0 for padding), added as
  /// `attention_mask` (int64). Empty: no mask.
  std::string mask_from = "input_ids";
  /// Pad on the left (decoder generation) instead of the right.
  bool pad_left = false;
};

/// A collate that pads every field whose samples differ in length along dim 0 to the longest (then to
/// pad_to_multiple_of), stacks the rest as default_collate, and adds `attention_mask` from `mask_from`.
/// Shapes: a field of samples (L_i, ...) becomes (B, L, ...) with L = max L_i rounded up.
Collate pad_collate(PadOptions options = {});

}  // namespace accelerate
