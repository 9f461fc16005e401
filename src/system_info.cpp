#include <accelerate/system_info.hpp>

#include <filesystem>

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

namespace {
/// NVIDIA GPUs the driver knows, seen without CUDA (the driver's /proc entries).
int driver_gpu_count() {
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it("/proc/driver/nvidia/gpus", ec), end; !ec && it != end; it.increment(ec))
    ++n;
  return n;
}
}  // namespace

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
  if (info.gpus.empty() && driver_gpu_count() > 0) {
    info.cuda_problem = detail::concat(
        "this machine has ", driver_gpu_count(), " NVIDIA GPU(s), but this LibTorch (", TORCH_VERSION,
        info.cuda_built ? ", built with CUDA" : ", a CPU-only build",
        ") cannot use them, so the job runs on the CPU. Usual causes: the driver is older than LibTorch's CUDA "
        "runtime needs (compare the CUDA version nvidia-smi prints), or the GPU is older than LibTorch has kernels "
        "for. Install a LibTorch whose CUDA matches the driver (README: set-up), or update the driver.");
  }
  return info;
}

std::string to_markdown(const RuntimeInfo& info) {
  std::string out = detail::concat("- LibTorch version: ", info.torch_version, "\n",
                                   "- CUDA/NCCL code built in: ", info.cuda_built ? "yes" : "no", "\n");
  if (!info.cuda_problem.empty()) out += "- WARNING: " + info.cuda_problem + "\n";
  if (info.cuda_runtime.empty()) return out + "- CUDA available: no\n";
  out += detail::concat("- CUDA available: yes (runtime ", info.cuda_runtime, ")\n",
                        "- cuDNN version: ", info.cudnn.empty() ? "none" : info.cudnn, "\n",
                        "- NCCL version: ", info.nccl.empty() ? "none" : info.nccl, "\n", "- GPUs: ", info.gpus.size(),
                        "\n");
  for (const auto& g : info.gpus) {
    out += detail::concat("  - ", g.index, ": ", g.name, ", ", format_bytes(g.total_memory), ", compute capability ",
                          g.major, ".", g.minor, "\n");
  }
  return out;
}

}  // namespace accelerate
