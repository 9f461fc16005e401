// ZeRO stage 3 units: the blocks whose parameters exist in full only while they run (FSDP2's fully_shard per
// transformer block, DeepSpeed's stage-3 submodules). LibTorch's modules have no forward hooks, so a unit is
// marked in C++ by two small changes instead of fully_shard(block):
//
//   struct BlockImpl : torch::nn::Module, accelerate::ShardingUnit { ... };   // the block type: a unit
//   x = accelerate::unit_forward(block, x);                                   // its call in the parent's forward
//
// Without stage 3 (or before prepare) unit_forward is block->forward(x), so the same model runs at every stage.
// See docs/training.md "ZeRO stage 3" for what a unit's user must not do.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include <ATen/core/Tensor.h>

#include <accelerate/activation_checkpointing.hpp>

namespace accelerate {

namespace detail {
class ShardedUnit;
struct UnitAccess;
}  // namespace detail

/// Base (a mixin beside torch::nn::Module) of a module type that ZeRO stage 3 shards as one unit, as FSDP2's
/// fully_shard turns a module into an FSDPModule. prepare(model) at stage 3 flattens each unit's trainable
/// parameters into one buffer, keeps this rank's 1/world_size of it, and frees the rest; unit_forward all-gathers
/// the buffer before the unit runs (the next unit's gather prefetched), frees it after, gathers it again for
/// backward, and reduce-scatters its gradients into each rank's shard. The parameters of a model outside any
/// unit (embeddings, a final norm: FSDP2's root) stay whole on every rank, with their gradients and optimizer state
/// sharded as at stage 2. Units must not nest; a unit's parameters all have one dtype and device.
class ShardingUnit {
 public:
  ShardingUnit() = default;
  ShardingUnit(const ShardingUnit&) = delete;
  ShardingUnit& operator=(const ShardingUnit&) = delete;
  virtual ~ShardingUnit() = default;

 private:
  friend struct detail::UnitAccess;
  detail::ShardedUnit* unit_ = nullptr;  // set while a stage-3 Accelerator holds the prepared model
};

struct UnitForwardOptions {
  /// Run the unit through accelerate::checkpoint (activation checkpointing; in training only): backward
  /// gathers the unit, recomputes its forward, and frees it again, as FSDP2 does with checkpointed blocks.
  bool checkpoint = false;
  ActivationCheckpointOptions checkpoint_options{};
};

/// Runs `fn(inputs)` as the forward of `unit` (see unit_forward). Internal entry of the templates below.
std::vector<at::Tensor> unit_forward_function(ShardingUnit* unit, const CheckpointFunction& fn,
                                              const std::vector<at::Tensor>& inputs, UnitForwardOptions options = {});

/// `module->forward(input)` with, at ZeRO stage 3, `module`'s parameters gathered for it (module: a holder or
/// pointer of a type deriving from ShardingUnit; any other module runs as it is). With options.checkpoint the
/// call is accelerate::checkpoint(module, input). The module must outlive backward. Throws what forward throws, and
/// DistributedOperationError / TimeoutError when the gather fails.
template <TensorModule M>
at::Tensor unit_forward(const M& module, const at::Tensor& input, UnitForwardOptions options = {}) {
  auto copy = module;  // non-const: the holder's const operator* gives a const module
  ShardingUnit* unit = nullptr;
  if constexpr (std::is_base_of_v<ShardingUnit, std::remove_cvref_t<decltype(*copy)>>) unit = &*copy;
  return unit_forward_function(
      unit,
      [m = copy](const std::vector<at::Tensor>& in) mutable { return std::vector<at::Tensor>{m->forward(in[0])}; },
      {input}, options)[0];
}

}  // namespace accelerate
