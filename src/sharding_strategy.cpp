// The ZeRO stages 0-3 as strategy objects (detail/sharding_strategy.hpp).
#include "detail/sharding_strategy.hpp"

#include <accelerate/accelerator_options.hpp>
#include <accelerate/error.hpp>

#include <torch/nn/module.h>

#include <iostream>
#include <unordered_map>
#include <unordered_set>

#include "detail/communicator.hpp"

namespace accelerate::detail {

namespace {

/// Stage 0: every rank holds everything; DDP's Reducer all-reduces the gradients.
class Replicated : public ShardingStrategy {
 public:
  int stage() const override { return 0; }
  std::unique_ptr<ZeroPartition> partition(torch::nn::Module&, const std::vector<at::Tensor>&, int, int, int64_t,
                                           c10::Device) const override {
    return nullptr;
  }
  std::unique_ptr<GradientSync> gradient_sync(Communicator& comm, const std::vector<at::Tensor>& params,
                                              const std::unordered_map<size_t, std::string>& names,
                                              const DdpOptions& options, ZeroPartition*) const override {
    return make_reducer_sync(comm, params, names, options);
  }
  std::unique_ptr<ZeroOptimizer> shard_optimizer(torch::optim::Optimizer&, const std::vector<ZeroPartition*>&,
                                                 const ProcessState&) const override {
    return nullptr;
  }
  const char* sync_backward_operation() const override { return "backward (gradient all-reduce)"; }
};

/// Stage 1: the gradients are all-reduced as at stage 0; each rank steps (and keeps the state of) its shard.
class ShardedOptimizerState : public Replicated {
 public:
  int stage() const override { return 1; }
  std::unique_ptr<ZeroPartition> partition(torch::nn::Module&, const std::vector<at::Tensor>& params, int world,
                                           int rank, int64_t bucket_cap, c10::Device device) const override {
    return std::make_unique<ZeroPartition>(params, world, rank, bucket_cap, device, /*shard_gradients=*/false);
  }
  std::unique_ptr<ZeroOptimizer> shard_optimizer(torch::optim::Optimizer& optimizer,
                                                 const std::vector<ZeroPartition*>& partitions,
                                                 const ProcessState& state) const override {
    return std::make_unique<ZeroOptimizer>(optimizer, partitions, state);
  }
};

/// Stage 2: the gradients are reduce-scattered into each rank's shard as their bucket completes.
class ShardedGradients : public ShardedOptimizerState {
 public:
  int stage() const override { return 2; }
  std::unique_ptr<ZeroPartition> partition(torch::nn::Module&, const std::vector<at::Tensor>& params, int world,
                                           int rank, int64_t bucket_cap, c10::Device device) const override {
    return std::make_unique<ZeroPartition>(params, world, rank, bucket_cap, device, /*shard_gradients=*/true);
  }
  std::unique_ptr<GradientSync> gradient_sync(Communicator& comm, const std::vector<at::Tensor>&,
                                              const std::unordered_map<size_t, std::string>&, const DdpOptions&,
                                              ZeroPartition* partition) const override {
    return make_sharded_gradient_sync(comm, *partition);
  }
  const char* sync_backward_operation() const override { return "backward (ZeRO-2 gradient reduce-scatter)"; }
};

/// Stage 3: as stage 2, and each ShardingUnit's parameters are one bucket whose values only its shard keeps
/// between uses (sharded_units.hpp); the rest of the model's parameters are bucketed as at stage 2.
class ShardedParameters final : public ShardedGradients {
 public:
  explicit ShardedParameters(const FsdpOptions& fsdp) : fsdp_(fsdp) {}
  int stage() const override { return 3; }
  std::unique_ptr<ZeroPartition> partition(torch::nn::Module& module, const std::vector<at::Tensor>& params, int world,
                                           int rank, int64_t bucket_cap, c10::Device device) const override {
    std::unordered_set<const void*> trainable;
    for (const auto& p : params) trainable.insert(p.unsafeGetTensorImpl());
    std::vector<std::vector<at::Tensor>> units;
    std::vector<std::string> names;
    std::unordered_map<const void*, std::string> owner;  // a parameter -> the unit that holds it
    for (const auto& [name, unit] : find_units(module)) {
      auto& mine = units.emplace_back();
      names.push_back(name);
      for (const auto& p : dynamic_cast<torch::nn::Module&>(*unit).parameters()) {
        if (!trainable.count(p.unsafeGetTensorImpl())) continue;
        const auto [it, fresh] = owner.emplace(p.unsafeGetTensorImpl(), name);
        ACCELERATE_CHECK(fresh, ConfigError, "ZeRO stage 3: units '", it->second, "' and '", name,
                         "' share a parameter (of shape ", p.sizes(),
                         "); a unit's parameters exist only while it "
                         "runs, so the other unit would find it freed. Keep shared (tied) parameters outside units.");
        ACCELERATE_CHECK(
            mine.empty() || mine.front().scalar_type() == p.scalar_type(), ConfigError, "ZeRO stage 3: unit '", name,
            "' mixes parameter dtypes (", mine.front().scalar_type(), " and ", p.scalar_type(),
            "); one flat buffer holds a unit's parameters. Convert the model to one dtype before prepare.");
        mine.push_back(p);
      }
    }
    return std::make_unique<ZeroPartition>(params, world, rank, bucket_cap, device, /*shard_gradients=*/true, units,
                                           names);
  }
  std::unique_ptr<ShardedUnits> shard_parameters(Communicator& comm, torch::nn::Module& module,
                                                 ZeroPartition* partition, c10::Device device) const override {
    auto units = find_units(module);
    if (units.empty() && comm.rank() == 0) {
      std::cerr << "accelerate: note: ZeRO stage 3, but the model has no ShardingUnit submodule, so its parameters "
                   "stay whole on every process (gradients and optimizer state are sharded, as at stage 2). Mark its "
                   "repeated blocks: `struct BlockImpl : torch::nn::Module, accelerate::ShardingUnit` and "
                   "accelerate::unit_forward(block, x) (docs/training.md, ZeRO stage 3)."
                << std::endl;
    }
    return std::make_unique<ShardedUnits>(comm, *partition, units, device, fsdp_);
  }
  const char* sync_backward_operation() const override { return "backward (ZeRO-3 gradient reduce-scatter)"; }

 private:
  const FsdpOptions fsdp_;
};

}  // namespace

std::unique_ptr<ShardingStrategy> make_sharding_strategy(int stage, const FsdpOptions& fsdp) {
  switch (stage) {
    case 0: return std::make_unique<Replicated>();
    case 1: return std::make_unique<ShardedOptimizerState>();
    case 2: return std::make_unique<ShardedGradients>();
    case 3: return std::make_unique<ShardedParameters>(fsdp);
  }
  throw ConfigError(concat("ZeRO stage ", stage, " is not one of 0, 1, 2, 3."));
}

}  // namespace accelerate::detail
