// What this process runs on: LibTorch, CUDA, cuDNN, NCCL and the GPUs, for `accelerate-cpp env` and the
// per-process state report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace accelerate {

struct GpuInfo {
  int index = 0;
  std::string name;
  int64_t total_memory = 0;      ///< bytes
  int64_t allocated_memory = 0;  ///< bytes held by this process's caching allocator
  int major = 0, minor = 0;      ///< compute capability (7.5 for a T4: no native bf16)
};

struct RuntimeInfo {
  std::string library_version;
  std::string torch_version;
  bool cuda_built = false;    ///< this build of the library has the CUDA/NCCL code
  std::string cuda_runtime;   ///< "13.0", or empty without CUDA
  std::string cudnn;          ///< "9.10.2", or empty
  std::string nccl;           ///< "2.27.7", or empty
  std::vector<GpuInfo> gpus;  ///< empty without CUDA or without a GPU
  /// Non-empty when the machine has NVIDIA GPUs that this LibTorch cannot use (a driver too old for its CUDA, or
  /// no kernels for the GPU): the job silently runs on the CPU otherwise. Says what to do.
  std::string cuda_problem;
};

RuntimeInfo runtime_info();

/// "- key: value" Markdown lines.
std::string to_markdown(const RuntimeInfo& info);

/// "12.3 GiB".
std::string format_bytes(int64_t bytes);

}  // namespace accelerate
