// Activation checkpointing: the gradients equal the plain forward's (dropout on, under autocast too), the caller's
// RNG continues as without it, and the mistakes PyTorch only warns about are refused.
#include <accelerate/activation_checkpointing.hpp>
#include <accelerate/error.hpp>
#include <accelerate/precision.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace accelerate;

namespace {

struct Net : torch::nn::Module {
  Net() {
    a = register_module("a", torch::nn::Linear(8, 32));
    b = register_module("b", torch::nn::Linear(32, 8));
    c = register_module("c", torch::nn::Linear(8, 4));
  }
  /// The middle piece (a, dropout, b) is the one checkpointed.
  at::Tensor middle(const at::Tensor& x) { return b(torch::dropout(torch::gelu(a(x)), 0.5, is_training())); }
  at::Tensor forward(const at::Tensor& x, bool checkpointed, ActivationCheckpointOptions o = {}) {
    auto h = x * 2;  // so the checkpointed piece's input requires grad through a graph, as in a real model
    h = checkpointed ? accelerate::checkpoint([this](const at::Tensor& t) { return middle(t); }, h, o) : middle(h);
    return c(torch::tanh(h));
  }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
};

/// Gradients of the parameters and of the input after one backward, from the same seed.
std::vector<at::Tensor> gradients(bool checkpointed, ActivationCheckpointOptions o = {},
                                  std::optional<c10::ScalarType> autocast = std::nullopt) {
  torch::manual_seed(0);
  Net net;
  auto x = torch::randn({16, 8}).requires_grad_(true);
  torch::manual_seed(42);  // the dropout masks
  at::Tensor loss;
  {
    std::optional<AutocastGuard> guard;
    if (autocast) guard.emplace(c10::kCPU, *autocast);
    loss = net.forward(x, checkpointed, o).to(at::kFloat).pow(2).sum();
  }
  // Draw from the RNG between forward and backward: the recomputation must not see these draws.
  (void)torch::rand({1000});
  loss.backward();
  std::vector<at::Tensor> out{x.grad().clone()};
  for (const auto& p : net.parameters()) out.push_back(p.grad().clone());
  out.push_back(torch::rand({4}));  // where the caller's RNG is after backward
  return out;
}

}  // namespace

TEST(ActivationCheckpointing, GradientsEqualThePlainForwardWithDropout) {
  const auto plain = gradients(false), checkpointed = gradients(true);
  ASSERT_EQ(plain.size(), checkpointed.size());
  for (size_t i = 0; i + 1 < plain.size(); ++i) {
    EXPECT_TRUE(torch::allclose(plain[i], checkpointed[i], 1e-6, 1e-6)) << "tensor " << i;
  }
  EXPECT_TRUE(torch::equal(plain.back(), checkpointed.back())) << "the caller's RNG moved differently";
  // Without the RNG restored, the recomputation draws other dropout masks: the gradients differ (this is what
  // preserve_rng_state protects).
  const auto unrestored = gradients(true, {.preserve_rng_state = false});
  EXPECT_FALSE(torch::allclose(plain[1], unrestored[1], 1e-6, 1e-6));
}

TEST(ActivationCheckpointing, RecomputesUnderTheForwardsAutocast) {
  const auto plain = gradients(false, {}, at::kBFloat16), checkpointed = gradients(true, {}, at::kBFloat16);
  for (size_t i = 0; i + 1 < plain.size(); ++i) {
    EXPECT_TRUE(torch::allclose(plain[i], checkpointed[i], 1e-6, 1e-6)) << "tensor " << i;
  }
  // Recomputed in fp32 instead, the bf16 forward's gradients are not reproduced.
  const auto fp32 = gradients(false);
  EXPECT_FALSE(torch::allclose(plain[1], fp32[1], 1e-6, 1e-6));
}

TEST(ActivationCheckpointing, ModulesAndEvaluation) {
  torch::manual_seed(0);
  torch::nn::Linear layer(4, 4);
  auto x = torch::randn({2, 4}).requires_grad_(true);
  auto y = accelerate::checkpoint(layer, x);
  EXPECT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(layer->weight.grad(), x.detach().sum(0).expand({4, 4})));
  torch::NoGradGuard no_grad;  // evaluation: the function just runs
  EXPECT_FALSE(accelerate::checkpoint(layer, x).requires_grad());
}

// A module reached through a loop variable (as a model's blocks are): the variable ends before backward, the
// recomputation must not depend on it.
TEST(ActivationCheckpointing, ModulesFromALoopVariable) {
  auto run = [](bool checkpointed) {
    torch::manual_seed(0);
    torch::nn::ModuleList list;
    for (int i = 0; i < 3; ++i) list->push_back(torch::nn::Linear(4, 4));
    auto x = torch::randn({2, 4}).requires_grad_(true);
    auto y = x;
    for (const auto& module : *list) {
      auto* layer = module->as<torch::nn::LinearImpl>();
      y = checkpointed ? accelerate::checkpoint(layer, y) : layer->forward(y);
    }
    y.pow(2).sum().backward();
    return list[0]->as<torch::nn::LinearImpl>()->weight.grad().clone();
  };
  EXPECT_TRUE(torch::allclose(run(false), run(true), 1e-6, 1e-6));
}

TEST(ActivationCheckpointing, AnInputWithoutGradIsRefused) {
  torch::nn::Linear layer(4, 4);
  try {
    (void)accelerate::checkpoint(layer, torch::randn({2, 4}));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no input requires grad"), std::string::npos) << e.what();
  }
}
