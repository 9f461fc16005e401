// Internal: data-parallel gradient synchronisation for one prepared module, on c10d's Reducer (what
// torch.nn.parallel.DistributedDataParallel runs): bucketed allreduce launched from autograd hooks, so it
// overlaps with the rest of backward; gradients are averaged over the processes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace torch::nn {
class Module;
}
namespace c10d {
class Reducer;
}

namespace accelerate {
struct DdpOptions;
}

namespace accelerate::detail {

class Communicator;

class DataParallel {
 public:
  /// Broadcasts parameters and buffers from rank 0 and builds the Reducer.
  DataParallel(Communicator& comm, torch::nn::Module& module, const DdpOptions& options);
  ~DataParallel();
  /// Arms the hooks for the coming backward: gradients of this backward are all-reduced.
  void prepare_for_backward(const at::Tensor& loss);
  /// Called on every backward, synced or not (bucket rebuilding after the first iteration, as DDP's forward).
  void prepare_iteration();
  /// After each backward: rank 0's buffers to every rank, in training mode when broadcast_buffers is on.
  void sync_buffers();
  bool require_sync = true;  ///< false inside no_sync()
  torch::nn::Module& module() { return module_; }

 private:
  torch::nn::Module& module_;
  Communicator& comm_;
  bool find_unused_;
  bool broadcast_buffers_;
  std::vector<at::Tensor> buffers_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

}  // namespace accelerate::detail
