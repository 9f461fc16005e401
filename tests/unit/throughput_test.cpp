// Throughput and MFU: the FLOP formula against a count of every matmul of one GPT configuration, the GPU peak
// table, the meter's arithmetic, and the CPU probe.
#include <accelerate/accelerate.hpp>

#include <chrono>
#include <gtest/gtest.h>
#include <thread>

using namespace accelerate;

// GPT-2's shape (L=4 blocks of width C=128 in H=4 heads, vocabulary V=256, context T=128, output head tied to the
// token embedding), counted by hand from the matmuls of one token's forward: per block c_attn (C x 3C), the
// attention output projection (C x C), c_fc (C x 4C) and the MLP's projection (4C x C), 2 FLOPs per multiply-add;
// per block and head the scores q.k over T positions and the weighted sum of T values (2·Q·T each); the head
// (C x V). Backward is twice the forward.
TEST(Throughput, FlopsPerTokenEqualsAHandCountOfTheMatmuls) {
  const int64_t L = 4, C = 128, H = 4, Q = C / H, V = 256, T = 128;
  const double block_weights = 2.0 * (C * 3 * C + C * C + C * 4 * C + 4 * C * C);
  const double attention = 2.0 * H * (2.0 * Q * T);
  const double head = 2.0 * C * V;
  const double forward = L * (block_weights + attention) + head;
  // N: the weights every token is multiplied by (the blocks' matrices and the tied head; biases and layer norms
  // are not matmuls, and a real count would add them to N).
  const int64_t N = L * 12 * C * C + C * V;
  EXPECT_DOUBLE_EQ(transformer_flops_per_token({.parameters = N, .layers = L, .heads = H, .head_dim = Q, .seq_len = T}),
                   3 * forward);
  EXPECT_THROW(transformer_flops_per_token({.parameters = -1}), ConfigError);
}

TEST(Throughput, GpuPeaksComeFromTheDataSheets) {
  EXPECT_EQ(gpu_peak_flops("Tesla T4", c10::kHalf), 65e12);
  EXPECT_EQ(gpu_peak_flops("Tesla T4", c10::kBFloat16), std::nullopt);  // Turing has no bf16 tensor cores
  EXPECT_EQ(gpu_peak_flops("Tesla V100-SXM2-16GB", c10::kFloat), 15.7e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA A100-SXM4-80GB", c10::kBFloat16), 312e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 80GB HBM3", c10::kBFloat16), 989e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 PCIe", c10::kBFloat16), 756e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H200", c10::kHalf), 989e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA GeForce RTX 4090", c10::kHalf), std::nullopt);
}

TEST(Throughput, TheMeterCountsOneWindowAtATime) {
  ThroughputMeter meter({.flops_per_token = 1e6, .peak_flops = 1e12, .num_processes = 2});
  meter.update(500, 4);
  meter.update(500, 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto first = meter.compute();
  EXPECT_GE(first.seconds, 0.05);
  EXPECT_DOUBLE_EQ(first.tokens_per_s, 2 * 1000 / first.seconds);
  EXPECT_DOUBLE_EQ(first.samples_per_s, 2 * 8 / first.seconds);
  EXPECT_DOUBLE_EQ(first.mfu, 1000 / first.seconds * 1e6 / 1e12);  // this process's tokens against its peak
  const auto second = meter.compute();                             // a new window: nothing counted since
  EXPECT_EQ(second.tokens_per_s, 0);
  EXPECT_LT(second.seconds, first.seconds);
  EXPECT_EQ(ThroughputMeter({}).compute().mfu, 0);  // no FLOP figures: no MFU
}

TEST(Throughput, TheCpuProbeMeasuresARate) {
  const double flops = measure_cpu_gemm_flops(c10::kFloat, 0.05);
  EXPECT_GT(flops, 1e8);   // any CPU of this century
  EXPECT_LT(flops, 1e14);  // and no CPU reaches a data-center GPU
  EXPECT_EQ(peak_flops(c10::Device(c10::kCPU), c10::kFloat).has_value(), true);
}
