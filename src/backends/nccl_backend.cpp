// NCCL: the CUDA backend. Compiled only when torch has CUDA; CUDA tensors go through NCCL, CPU tensors
// (objects, shapes) through Gloo, as torch.distributed's default "cpu:gloo,cuda:nccl".
#include "detail/communicator.hpp"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace accelerate::detail {
namespace {
class NcclBackend final : public CommunicationBackend {
 public:
  std::string name() const override { return "nccl"; }
  void attach(c10d::ProcessGroup& group, const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnvironment& env,
              std::chrono::milliseconds timeout) const override {
    const auto device_count = c10::cuda::device_count();
    const c10::Device device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank % device_count));
    c10::cuda::set_device(device.index());
    // Timeouts stay with torch's watchdog (asynchronous error handling, the default): NCCL work only makes the
    // stream wait, so a CPU-side deadline would need a blocking wait, which also disables the watchdog and could
    // leave a hung collective in the Reducer's path hanging for ever. docs/debugging.md says what differs.
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("cuda/", store),
                                                            env.rank, env.world_size, options);
    group.setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
    group.setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    group.setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, create_gloo(store, env, timeout));
    // Connect now, bound to this rank's GPU, inside the set-up's error handling: "Duplicate GPU detected" or a
    // network error surfaces here with the fix, not raw from the first collective in prepare(model).
    group.setBoundDeviceId(device);
    nccl->setBoundDeviceId(device);
    nccl->eagerConnectSingleDevice(device);
  }
};
}  // namespace

std::unique_ptr<CommunicationBackend> make_nccl_backend() { return std::make_unique<NcclBackend>(); }

}  // namespace accelerate::detail
