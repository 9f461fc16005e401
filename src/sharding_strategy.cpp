// The ZeRO stages 0-2 as strategy objects (detail/sharding_strategy.hpp).
#include "detail/sharding_strategy.hpp"

#include <accelerate/error.hpp>

namespace accelerate::detail {

namespace {

/// Stage 0: every rank holds everything; DDP's Reducer all-reduces the gradients.
class Replicated : public ShardingStrategy {
 public:
  int stage() const override { return 0; }
  std::unique_ptr<ZeroPartition> partition(const std::vector<at::Tensor>&, int, int, int64_t) const override {
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
  std::unique_ptr<ZeroPartition> partition(const std::vector<at::Tensor>& params, int world, int rank,
                                           int64_t bucket_cap) const override {
    return std::make_unique<ZeroPartition>(params, world, rank, bucket_cap, /*shard_gradients=*/false);
  }
  std::unique_ptr<ZeroOptimizer> shard_optimizer(torch::optim::Optimizer& optimizer,
                                                 const std::vector<ZeroPartition*>& partitions,
                                                 const ProcessState& state) const override {
    return std::make_unique<ZeroOptimizer>(optimizer, partitions, state);
  }
};

/// Stage 2: the gradients are reduce-scattered into each rank's shard as their bucket completes.
class ShardedGradients final : public ShardedOptimizerState {
 public:
  int stage() const override { return 2; }
  std::unique_ptr<ZeroPartition> partition(const std::vector<at::Tensor>& params, int world, int rank,
                                           int64_t bucket_cap) const override {
    return std::make_unique<ZeroPartition>(params, world, rank, bucket_cap, /*shard_gradients=*/true);
  }
  std::unique_ptr<GradientSync> gradient_sync(Communicator& comm, const std::vector<at::Tensor>&,
                                              const std::unordered_map<size_t, std::string>&, const DdpOptions&,
                                              ZeroPartition* partition) const override {
    return make_sharded_gradient_sync(comm, *partition);
  }
  const char* sync_backward_operation() const override { return "backward (ZeRO-2 gradient reduce-scatter)"; }
};

}  // namespace

std::unique_ptr<ShardingStrategy> make_sharding_strategy(int stage) {
  switch (stage) {
    case 0: return std::make_unique<Replicated>();
    case 1: return std::make_unique<ShardedOptimizerState>();
    case 2: return std::make_unique<ShardedGradients>();
  }
  throw ConfigError(concat("ZeRO stage ", stage, " is not one of 0, 1, 2."));
}

}  // namespace accelerate::detail
