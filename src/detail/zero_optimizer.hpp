// Internal: a torch::optim optimizer under ZeRO stage 1 or 2. Its parameter groups are replaced by this rank's
// pieces of the parameters (flat views into the parameters' own storage, so stepping a piece updates the model in
// place), so the unchanged optimizer keeps state for its shard only; after each step the partitions all-gather the
// updated parameters. Checkpoints hold the state consolidated into the unsharded format (one tensor per parameter,
// as stage 0 writes it), so they load at any stage and world size.
#pragma once

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include <accelerate/optimizer.hpp>

#include <nlohmann/json.hpp>

#include "detail/optimizer_state.hpp"
#include "detail/tensor_pieces.hpp"
#include "detail/zero_partition.hpp"

namespace torch::optim {
class Optimizer;
}

namespace accelerate {
class ProcessState;
}

namespace accelerate::detail {

class ZeroOptimizer final : public OptimizerSharding {
 public:
  /// `partitions`: those of the models prepared so far; every trainable parameter of the optimizer must be in one
  /// (ConfigError naming the fix otherwise). Frozen parameters (requires_grad false) are left out. State the
  /// optimizer already holds is kept, cut to this rank's pieces.
  ZeroOptimizer(torch::optim::Optimizer& optimizer, const std::vector<ZeroPartition*>& partitions,
                const ProcessState& state);
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  /// Points each piece's gradient at its part of the gradient: the full parameter's (stage 1) or the partition's
  /// gradient shard (stage 2). Before unscaling, clipping or stepping.
  void bind_gradients() override;
  /// After a step that ran: every rank gets every updated parameter.
  void gather_parameters() override;
  /// The full parameters' gradients and the pieces' (the stage-2 shards are zeroed).
  void zero_grad(bool set_to_none) override;
  /// The gradients of this rank's pieces of `params` (full parameters or pieces), bound first.
  std::vector<at::Tensor> piece_gradients(const std::vector<at::Tensor>& params);
  /// All-reduces GradScaler's found_inf (max), so an inf on any shard skips the step on every rank.
  void reduce_found_inf(at::Tensor& found_inf) override;

  /// The whole optimizer's state in the unsharded format, on the main process (elsewhere only what the format
  /// needs to agree on). Collective: every rank calls it.
  OptimizerState consolidated_state();
  /// The unsharded format's JSON (hyper-parameters, every parameter's scalar state), complete on the main process.
  /// Collective (a gather of the scalars, no tensor).
  nlohmann::json state_meta();
  /// This rank's state tensors as pieces of the unsharded format's tensors ("state.<index>.<field>"), to be saved
  /// by every rank in parallel (ZeRO stage 3's save_state); CheckpointError for state that is not per element.
  std::vector<TensorPiece> state_pieces();
  /// Loads an unsharded state (any world size and stage wrote it, whole or in pieces) into this rank's pieces,
  /// reading only their elements. `where` names the files.
  void load_state(const TensorSource& tensors, const nlohmann::json& meta, const std::string& where);

 private:
  nlohmann::json state_meta(const OptimizerState& local, std::set<std::string>* fields);
  struct Slot {
    at::Tensor piece;  // in the optimizer's groups
    const ZeroPiece* info;
    ZeroPartition* partition;
    size_t full_index;  // the parameter's index in the unsharded optimizer (groups in order)
  };
  torch::optim::Optimizer& optimizer_;
  const ProcessState& state_;
  std::vector<std::vector<at::Tensor>> full_groups_;  // the groups' original parameters
  std::vector<size_t> group_slots_;                   // pieces per group
  std::vector<Slot> slots_;                           // in the optimizer's parameter order
  std::unordered_map<const void*, size_t> slot_of_;   // full parameter or piece -> slot
  std::vector<ZeroPartition*> partitions_;            // those holding this optimizer's parameters
};

/// Clips gradient shards by the global norm over all of them (HF's clip_grad_norm_ under ZeRO): each rank sums
/// its shards' norms to the power `norm_type` (max for inf), the sum is all-reduced, and every rank scales its
/// shards by max_norm / (total + 1e-6), capped at 1, as torch's clip_grad_norm_. Returns the total norm.
double clip_sharded_grad_norm(const ProcessState& state, const std::vector<at::Tensor>& grads, double max_norm,
                              double norm_type);

}  // namespace accelerate::detail
