#include <accelerate/system_info.hpp>

#include <accelerate/error.hpp>
#include <accelerate/version.hpp>

#include <ATen/detail/CUDAHooksInterface.h>
#include <cstdio>
#include <torch/version.h>

#include "detail/device_info.hpp"

namespace accelerate {
namespace {

// CUDA encodes versions as major*1000 + minor*10; cuDNN 9+ as major*10000 + minor*100 + patch.
std::string cuda_version(long v) { return v <= 0 ? "" : detail::concat(v / 1000, ".", (v % 1000) / 10); }
std::string cudnn_version(long v) {
  if (v <= 0) return "";
  return v >= 90000 ? detail::concat(v / 10000, ".", (v % 10000) / 100, ".", v % 100)
                    : detail::concat(v / 1000, ".", (v % 1000) / 100, ".", v % 100);
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.library_version = kVersion;
  info.torch_version = TORCH_VERSION;
  info.cuda_built = detail::cuda_built();
  const auto& hooks = at::detail::getCUDAHooks();
  if (hooks.hasCUDA()) {
    info.cuda_runtime = cuda_version(hooks.versionCUDART());
    if (hooks.hasCuDNN()) info.cudnn = cudnn_version(hooks.versionCuDNN());
    info.nccl = detail::nccl_version();
    info.gpus = detail::gpus();
  }
  return info;
}

std::string to_markdown(const RuntimeInfo& info) {
  std::string out = detail::concat("- LibTorch version: ", info.torch_version, "\n",
                                   "- CUDA/NCCL code built in: ", info.cuda_built ? "yes" : "no", "\n");
  if (info.cuda_runtime.empty()) return out + "- CUDA available: no\n";
  out += detail::concat("- CUDA available: yes (runtime ", info.cuda_runtime, ")\n",
                        "- cuDNN version: ", info.cudnn.empty() ? "none" : info.cudnn, "\n",
                        "- NCCL version: ", info.nccl.empty() ? "none" : info.nccl, "\n",
                        "- GPUs: ", info.gpus.size(), "\n");
  for (const auto& g : info.gpus) {
    out += detail::concat("  - ", g.index, ": ", g.name, ", ", format_bytes(g.total_memory), "\n");
  }
  return out;
}

}  // namespace accelerate
