// Internal: data-parallel gradient synchronisation for one prepared module. Stages 0 and 1 run c10d's Reducer
// (what torch.nn.parallel.DistributedDataParallel runs): bucketed allreduce launched from autograd hooks, so it
// overlaps with the rest of backward; gradients are averaged over the processes. Stage 2 reduce-scatters the
// same way into each rank's gradient shard (ZeRO-2, zero_gradients.cpp).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "detail/sharded_units.hpp"
#include "detail/zero_partition.hpp"

namespace torch::nn {
class Module;
}

namespace accelerate {
struct DdpOptions;
}

namespace accelerate::detail {

class Communicator;

/// How the gradients of a sync backward are combined across the processes (a strategy per ZeRO stage).
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  /// Called on every backward, synced or not.
  virtual void prepare_iteration() {}
  /// Whether the coming prepare_iteration may run a collective (the same answer on every rank).
  virtual bool rebuilds() const { return false; }
  /// Arms the hooks: the gradients of the coming backward are reduced.
  virtual void prepare_for_backward(const at::Tensor& loss) = 0;
  /// After the armed backward returned: waits for what is still in flight.
  virtual void finish_backward() {}
};

/// Stage 2: the gradients of each bucket are reduce-scattered into this rank's shard as soon as the bucket is
/// complete, and the full gradients are released.
std::unique_ptr<GradientSync> make_sharded_gradient_sync(Communicator& comm, ZeroPartition& partition);

/// Stages 0 and 1: c10d's Reducer over `params` (`names` by index, for its error messages), as torch DDP builds it.
std::unique_ptr<GradientSync> make_reducer_sync(Communicator& comm, const std::vector<at::Tensor>& params,
                                                const std::unordered_map<size_t, std::string>& names,
                                                const DdpOptions& options);

class ShardingStrategy;

class DataParallel {
 public:
  /// Broadcasts parameters and buffers from rank 0 and sets up the gradient synchronisation (and the partition)
  /// of `strategy`.
  /// `device`: the process's (the model is there, but for tensors without weights yet).
  DataParallel(Communicator& comm, torch::nn::Module& module, const DdpOptions& options,
               const ShardingStrategy& strategy, c10::Device device);
  ~DataParallel();
  /// Arms the hooks for the coming backward: gradients of this backward are reduced.
  void prepare_for_backward(const at::Tensor& loss) { sync_->prepare_for_backward(loss); }
  /// Called on every backward, synced or not (bucket rebuilding after the first iteration, as DDP's forward).
  void prepare_iteration() { sync_->prepare_iteration(); }
  /// Whether prepare_iteration may run a collective this time (DDP's one bucket rebuild).
  bool rebuilds() const { return sync_->rebuilds(); }
  /// After every backward: waits for what an armed one left in flight; stage 3 frees the units still gathered.
  void finish_backward() {
    sync_->finish_backward();
    if (units_) units_->reshard_all();
  }
  /// After each backward: rank 0's buffers to every rank, in training mode when broadcast_buffers is on.
  void sync_buffers();
  bool require_sync = true;  ///< false inside no_sync()
  torch::nn::Module& module() { return module_; }
  /// ZeRO's partition of the parameters; nullptr at stage 0.
  ZeroPartition* partition() { return partition_.get(); }
  /// Stage 3's units; nullptr at stages 0-2.
  ShardedUnits* units() { return units_.get(); }

 private:
  torch::nn::Module& module_;
  Communicator& comm_;
  bool broadcast_buffers_;
  std::vector<at::Tensor> buffers_;
  std::unique_ptr<ZeroPartition> partition_;
  std::unique_ptr<GradientSync> sync_;
  std::unique_ptr<ShardedUnits> units_;  // after partition_, whose buckets it uses
};

}  // namespace accelerate::detail
