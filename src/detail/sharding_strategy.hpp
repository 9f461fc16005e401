// Internal: the ZeRO stage as a strategy object, chosen once when the Accelerator is built
// (make_sharding_strategy is the one place that reads the number). What differs between the stages, and only
// that, is asked of it: a prepared model's partition and gradient synchronisation, a prepared optimizer's
// sharding, and the name of a synced backward's collectives.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "detail/data_parallel.hpp"
#include "detail/zero_optimizer.hpp"
#include "detail/zero_partition.hpp"

namespace torch::optim {
class Optimizer;
}

namespace accelerate {
class ProcessState;
struct DdpOptions;
}  // namespace accelerate

namespace accelerate::detail {

class Communicator;

class ShardingStrategy {
 public:
  virtual ~ShardingStrategy() = default;
  /// 0 (replicated, DDP), 1 (optimizer state sharded) or 2 (gradients too): Accelerator::zero_stage().
  virtual int stage() const = 0;
  /// How one model's trainable `params` are split over the `world` processes in buckets of `bucket_cap` bytes;
  /// nullptr where nothing is sharded.
  virtual std::unique_ptr<ZeroPartition> partition(const std::vector<at::Tensor>& params, int world, int rank,
                                                   int64_t bucket_cap) const = 0;
  /// How a synced backward combines the gradients of `params` (`partition`: from partition()).
  virtual std::unique_ptr<GradientSync> gradient_sync(Communicator& comm, const std::vector<at::Tensor>& params,
                                                      const std::unordered_map<size_t, std::string>& names,
                                                      const DdpOptions& options, ZeroPartition* partition) const = 0;
  /// The sharding of a prepared optimizer over the prepared models' partitions; nullptr where its state is
  /// replicated.
  virtual std::unique_ptr<ZeroOptimizer> shard_optimizer(torch::optim::Optimizer& optimizer,
                                                         const std::vector<ZeroPartition*>& partitions,
                                                         const ProcessState& state) const = 0;
  /// A synced backward's collectives, as the hang report names them.
  virtual const char* sync_backward_operation() const = 0;
};

/// The strategy of ZeRO `stage` (0, 1 or 2; checked before, by check_zero_stage).
std::unique_ptr<ShardingStrategy> make_sharding_strategy(int stage);

}  // namespace accelerate::detail
