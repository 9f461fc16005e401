// Memory tools: the optimizer's state and the gradients in bytes, the peak, for the GPT example's memory line.
#include <accelerate/error.hpp>
#include <accelerate/memory.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace accelerate;

TEST(Memory, OptimizerStateAndGradientBytes) {
  torch::nn::Linear layer(10, 10);  // 110 float parameters
  torch::optim::AdamW adamw(layer->parameters());
  EXPECT_EQ(optimizer_state_bytes(adamw), 0);  // no step yet: no state
  layer(torch::randn({4, 10})).sum().backward();
  EXPECT_EQ(gradient_bytes(layer->parameters()), 110 * 4);
  adamw.step();
  EXPECT_EQ(optimizer_state_bytes(adamw), 2 * 110 * 4);  // exp_avg and exp_avg_sq
  adamw.zero_grad();
  EXPECT_EQ(gradient_bytes(layer->parameters()), 0);
  torch::optim::SGD sgd(layer->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  layer(torch::randn({4, 10})).sum().backward();
  sgd.step();
  EXPECT_EQ(optimizer_state_bytes(sgd), 110 * 4);  // the momentum buffers
  torch::optim::LBFGS lbfgs(layer->parameters());
  EXPECT_THROW(optimizer_state_bytes(lbfgs), ConfigError);
}

TEST(Memory, PeakOnTheCpuIsTheResidentSetSize) {
  const int64_t before = peak_memory_bytes(c10::Device(c10::kCPU));
  EXPECT_GT(before, 10 << 20);                       // LibTorch alone is tens of MB
  auto big = torch::ones({64 << 20}, torch::kByte);  // 64 MiB, touched
  EXPECT_GE(peak_memory_bytes(c10::Device(c10::kCPU)), before);
  EXPECT_GT(peak_memory_bytes(c10::Device(c10::kCPU)), 64 << 20);
  clear_device_cache(c10::Device(c10::kCPU));  // nothing to do on the CPU
}
