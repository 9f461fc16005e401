// Throughput and model FLOPs utilisation (MFU): tokens and samples per second over a window of steps, and the
// share of the hardware's peak that the model's FLOPs reach, computed as PaLM, torchtitan and llm.c do. On a GPU the
// peak comes from NVIDIA's data sheets; on a CPU, which has no such table, from a short GEMM probe of this process.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace accelerate {

/// A decoder-only transformer's shape, for its training FLOPs.
struct TransformerShape {
  /// N: the parameters every token is multiplied by: all but lookup tables (the position embedding; the token
  /// embedding too unless it is tied to the output head, which multiplies every token by it).
  int64_t parameters = 0;
  int64_t layers = 0;    ///< L
  int64_t heads = 0;     ///< H
  int64_t head_dim = 0;  ///< Q (H * Q is the width)
  int64_t seq_len = 0;   ///< T: tokens per sequence (the context attention covers)
};

/// Training FLOPs (forward and backward) per token: 6N + 12·L·H·Q·T (PaLM, appendix B; torchtitan's
/// get_num_flop_per_token). 6N: each weight is one multiply-add (2 FLOPs) per token forward and two backward;
/// 12·L·H·Q·T: attention's scores (QK^T) and weighted sum (AV), 2·2·H·Q·T forward per layer and twice that backward.
/// Recomputation (activation checkpointing) is not counted, as MFU does not count it.
double transformer_flops_per_token(const TransformerShape& shape);

/// The dense peak FLOP/s of an NVIDIA GPU by its CUDA name ("Tesla T4", "NVIDIA H100 80GB HBM3", ...) for `dtype`
/// (Half and BFloat16: tensor cores; Float: plain fp32, TF32 not assumed), from NVIDIA's data sheets, for T4, P100,
/// V100, A100, H100 (SXM, PCIe, NVL) and H200; nullopt for another GPU or a dtype it lacks (bf16 before Ampere).
std::optional<double> gpu_peak_flops(const std::string& name, c10::ScalarType dtype);

/// This process's matmul rate on the CPU in FLOP/s: square GEMMs in `dtype` with LibTorch's threads for about
/// `seconds` (the best of several rounds). What `accelerate-cpp env` reports and what CPU MFU is relative to.
double measure_cpu_gemm_flops(c10::ScalarType dtype = c10::kFloat, double seconds = 0.3);

/// The peak for `device`: gpu_peak_flops of its name, or the CPU probe; nullopt for a GPU not in the table.
std::optional<double> peak_flops(c10::Device device, c10::ScalarType dtype);

/// What a ThroughputMeter measured over one window.
struct Throughput {
  double tokens_per_s = 0;   ///< all processes together
  double samples_per_s = 0;  ///< all processes together
  double mfu = 0;            ///< model FLOPs / (seconds * peak), 0 to 1; 0 without flops_per_token or a peak
  double seconds = 0;        ///< the window's wall time
};

struct ThroughputOptions {
  double flops_per_token = 0;  ///< training FLOPs per token (transformer_flops_per_token); 0: no MFU
  double peak_flops = 0;       ///< one process's device peak in FLOP/s (peak_flops); 0: no MFU
  int num_processes = 1;       ///< every process does the same work (data parallel): totals are this one's times it
};

/// Tokens/s, samples/s and MFU over the steps between two compute() calls (Lightning's ThroughputMonitor,
/// torchtitan's per-step metrics). Each process counts its own tokens.
class ThroughputMeter {
 public:
  explicit ThroughputMeter(ThroughputOptions options);
  /// Counts one step's (or micro-step's) tokens and samples on this process.
  void update(int64_t tokens, int64_t samples);
  /// The figures since the previous compute() (or construction); starts the next window. On a GPU call it after
  /// something that waits for the device (a loss's item()), so that the window's time covers the queued work.
  Throughput compute();

 private:
  ThroughputOptions options_;
  std::chrono::steady_clock::time_point start_;
  int64_t tokens_ = 0, samples_ = 0;
};

}  // namespace accelerate
