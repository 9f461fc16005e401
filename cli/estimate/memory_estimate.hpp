// `accelerate-cpp estimate-memory` (HF's `accelerate estimate-memory`): the memory a model needs for training with
// AdamW, per process, by parameter dtype and ZeRO stage, from the parameter count of a safetensors checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace accelerate::cli {

struct ModelSize {
  int64_t parameters = 0;
  std::string largest_name;  ///< the largest tensor (HF's "largest layer")
  int64_t largest = 0;       ///< its elements
};

/// Parameters of a safetensors file, of an index (`model.safetensors.index.json`: every shard it names), or of
/// a folder holding either. Reads the headers only (the files are memory-mapped, their data is never touched).
/// CheckpointError naming the file when one is missing or not a valid safetensors file.
ModelSize count_parameters(const std::string& path);

struct MemoryRow {
  std::string dtype;  ///< parameter dtype: float32, bfloat16, float16
  int zero_stage = 0;
  /// Bytes per process: the weights (sharded at stage 3), the gradients (sharded from stage 2) and AdamW's two
  /// moments (sharded from stage 1), all in the parameter dtype, as torch::optim::AdamW keeps them. Stage 3 adds
  /// what the estimate cannot know: the parameters outside ShardingUnits (whole on every process) and the units
  /// gathered at once (the running one and the prefetched one).
  double weights = 0, gradients = 0, optimizer = 0;
  double total() const { return weights + gradients + optimizer; }
};

/// One row per dtype and stage (0, 1, 2, 3) for `num_processes` processes; a shard is the parameters divided by the
/// processes, rounded up (ZeRO partitions whole tensors, so a real shard can be somewhat larger). ConfigError for
/// an unknown dtype or a count below 1.
std::vector<MemoryRow> estimate_training_memory(int64_t parameters, const std::vector<std::string>& dtypes,
                                                int num_processes);

/// "474.70 MiB", "1.85 GiB".
std::string human_bytes(double bytes);

}  // namespace accelerate::cli
