// Internal: the ZeRO stage as a strategy object, chosen once when the Accelerator is built
// (make_sharding_strategy is the one place that reads the number). What differs between the stages, and only
// that, is asked of it: a prepared model's partition, gradient synchronisation and (stage 3) parameter sharding,
// a prepared optimizer's sharding, and the name of a synced backward's collectives.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "detail/data_parallel.hpp"
#include "detail/sharded_units.hpp"
#include "detail/zero_optimizer.hpp"
#include "detail/zero_partition.hpp"

namespace torch::optim {
class Optimizer;
}
namespace torch::nn {
class Module;
}

namespace accelerate {
class ProcessState;
struct DdpOptions;
struct FsdpOptions;
}  // namespace accelerate

namespace accelerate::detail {

class Communicator;

class ShardingStrategy {
 public:
  virtual ~ShardingStrategy() = default;
  /// 0 (replicated, DDP), 1 (optimizer state sharded), 2 (gradients too) or 3 (parameters too):
  /// Accelerator::zero_stage().
  virtual int stage() const = 0;
  /// How one model's trainable `params` (of `module`) are split over the `world` processes in buckets of
  /// `bucket_cap` bytes, the shards on `device`; nullptr where nothing is sharded.
  virtual std::unique_ptr<ZeroPartition> partition(torch::nn::Module& module, const std::vector<at::Tensor>& params,
                                                   int world, int rank, int64_t bucket_cap,
                                                   c10::Device device) const = 0;
  /// Stage 3: `module`'s units with their parameters sharded on `device` (after partition(), whose units'
  /// buckets they take over; collective); nullptr where parameters stay whole.
  virtual std::unique_ptr<ShardedUnits> shard_parameters(Communicator&, torch::nn::Module&, ZeroPartition*,
                                                         c10::Device) const {
    return nullptr;
  }
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

/// The strategy of ZeRO `stage` (0 to 3; checked before, by check_zero_stage); `fsdp`: stage 3's prefetching.
std::unique_ptr<ShardingStrategy> make_sharding_strategy(int stage, const FsdpOptions& fsdp);

}  // namespace accelerate::detail
