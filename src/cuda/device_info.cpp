// Device names and memory, and NCCL's version: compiled only when torch has CUDA.
#include "detail/device_info.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>

namespace accelerate::detail {

bool cuda_built() { return true; }

std::string nccl_version() { return c10d::getNcclVersion(); }

std::vector<GpuInfo> gpus() {
  std::vector<GpuInfo> out;
  const int n = c10::cuda::device_count();
  for (int i = 0; i < n; ++i) {
    const auto* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(i));
    GpuInfo g;
    g.index = i;
    g.name = p->name;
    g.total_memory = static_cast<int64_t>(p->totalGlobalMem);
    g.major = p->major;
    g.minor = p->minor;
    // Only devices this process already uses: asking the allocator does not create a context.
    if (c10::cuda::CUDACachingAllocator::get()->initialized()) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(i));
      g.allocated_memory = stats.allocated_bytes[0].current;
    }
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace accelerate::detail
