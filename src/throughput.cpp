// Throughput and MFU (throughput.hpp).
#include <accelerate/throughput.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <array>
#include <utility>

#include "detail/device_info.hpp"
#include "detail/error_text.hpp"

namespace accelerate {

double transformer_flops_per_token(const TransformerShape& s) {
  ACCELERATE_CHECK(s.parameters >= 0 && s.layers >= 0 && s.heads >= 0 && s.head_dim >= 0 && s.seq_len >= 0, ConfigError,
                   "transformer_flops_per_token: every field of TransformerShape must be >= 0.");
  return 6.0 * static_cast<double>(s.parameters) + 12.0 * static_cast<double>(s.layers) * static_cast<double>(s.heads) *
                                                       static_cast<double>(s.head_dim) * static_cast<double>(s.seq_len);
}

namespace {

/// Dense peaks in TFLOP/s (NVIDIA's data sheets): tensor-core fp16, bf16 (0: none), plain fp32. The more specific
/// name of a family first ("H100 PCIe" before "H100").
struct Peak {
  const char* name;
  double fp16, bf16, fp32;
};
constexpr std::array<Peak, 10> kPeaks{{
    {"T4", 65, 0, 8.1},
    {"P100-PCIE", 18.7, 0, 9.3},
    {"P100", 21.2, 0, 10.6},  // SXM2
    {"V100-PCIE", 112, 0, 14},
    {"V100", 125, 0, 15.7},  // SXM2
    {"A100", 312, 312, 19.5},
    {"H100 PCIe", 756, 756, 51},
    {"H100 NVL", 835, 835, 60},
    {"H100", 989, 989, 67},  // SXM
    {"H200", 989, 989, 67},  // GH200 too
}};

}  // namespace

std::optional<double> gpu_peak_flops(const std::string& name, c10::ScalarType dtype) {
  for (const auto& peak : kPeaks) {
    if (name.find(peak.name) == std::string::npos) continue;
    const double tflops = dtype == c10::kHalf ? peak.fp16 : dtype == c10::kBFloat16 ? peak.bf16 : peak.fp32;
    if (tflops <= 0) return std::nullopt;
    return tflops * 1e12;
  }
  return std::nullopt;
}

double measure_cpu_gemm_flops(c10::ScalarType dtype, double seconds) {
  constexpr int64_t n = 512;  // large enough for the kernels' full rate, small enough to stay in cache
  const auto options = at::TensorOptions().dtype(dtype);
  const auto a = at::randn({n, n}, options), b = at::randn({n, n}, options);
  auto c = at::empty({n, n}, options);
  at::mm_out(c, a, b);  // warm-up: first-call setup is not the rate
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration<double>(seconds);
  double best = 0;
  for (int round = 0; round < 3 || clock::now() < deadline; ++round) {
    const auto began = clock::now();
    int reps = 0;
    do {
      at::mm_out(c, a, b);
      ++reps;
    } while (clock::now() - began < std::chrono::duration<double>(seconds / 10));
    const double elapsed = std::chrono::duration<double>(clock::now() - began).count();
    best = std::max(best, 2.0 * n * n * n * reps / elapsed);
    if (round > 100) break;
  }
  return best;
}

std::optional<double> peak_flops(c10::Device device, c10::ScalarType dtype) {
  if (!device.is_cuda()) return measure_cpu_gemm_flops(dtype);
  for (const auto& gpu : detail::gpus()) {
    if (gpu.index == device.index() || (device.index() < 0 && gpu.index == 0)) return gpu_peak_flops(gpu.name, dtype);
  }
  return std::nullopt;
}

ThroughputMeter::ThroughputMeter(ThroughputOptions options)
    : options_(options), start_(std::chrono::steady_clock::now()) {
  ACCELERATE_CHECK(options_.num_processes >= 1 && options_.flops_per_token >= 0 && options_.peak_flops >= 0,
                   ConfigError, "ThroughputMeter: num_processes must be >= 1 and the FLOP figures >= 0.");
}

void ThroughputMeter::update(int64_t tokens, int64_t samples) {
  tokens_ += tokens;
  samples_ += samples;
}

Throughput ThroughputMeter::compute() {
  const auto now = std::chrono::steady_clock::now();
  Throughput out;
  out.seconds = std::chrono::duration<double>(now - start_).count();
  if (out.seconds > 0) {
    const double local_tokens_per_s = static_cast<double>(tokens_) / out.seconds;
    out.tokens_per_s = local_tokens_per_s * options_.num_processes;
    out.samples_per_s = static_cast<double>(samples_) / out.seconds * options_.num_processes;
    if (options_.peak_flops > 0) out.mfu = local_tokens_per_s * options_.flops_per_token / options_.peak_flops;
  }
  start_ = now;
  tokens_ = samples_ = 0;
  return out;
}

}  // namespace accelerate
