// Internal: how busy the hardware is, for the state report (the seed's "debug like a student"): a GPU's
// utilisation and memory through NVML, loaded at run time (no link-time dependency: a machine without NVIDIA's
// driver just says so), and this process's CPU use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace accelerate::detail {

struct GpuUtilisation {
  unsigned gpu_percent = 0;     ///< time a kernel ran over NVML's last sample period
  unsigned memory_percent = 0;  ///< time device memory was read or written, likewise
  uint64_t used_bytes = 0, total_bytes = 0;
};

/// CUDA device `index` (mapped to NVML's physical index through CUDA_VISIBLE_DEVICES when it lists numbers) from
/// NVML (libnvidia-ml.so.1, dlopen'ed); nullopt with `why` set when NVML is absent or fails.
std::optional<GpuUtilisation> gpu_utilisation(int index, std::string& why);

/// This process's CPU time (user + system) over its wall time since it started, in percent of one core
/// (/proc/self/stat); nullopt where /proc cannot tell.
std::optional<double> process_cpu_percent();

}  // namespace accelerate::detail
