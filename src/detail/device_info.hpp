// Internal: what only the CUDA build can ask (device names and memory, NCCL's version); the CPU-only build
// answers "nothing" (src/backends/no_cuda.cpp).
#pragma once

#include <string>
#include <vector>

#include <accelerate/system_info.hpp>

namespace accelerate::detail {
bool cuda_built();
std::string nccl_version();
std::vector<GpuInfo> gpus();
}  // namespace accelerate::detail
