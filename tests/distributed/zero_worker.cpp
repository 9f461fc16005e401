// ZeRO stages 1 and 2 in every rank (2 or 4 processes, CPU, fp32): the same training at stage 0, 1 and 2 ends with
// the same parameters (20 optimizer steps of the GPT test model with AdamW, two parameter groups, accumulation and
// clipping), with small buckets so that parameters straddle shard boundaries; the shards hold about 1/N of the
// optimizer state (stage 1) and of the gradients (stage 2); an fp16 overflow on one shard skips the step on every
// rank; a stage-2 checkpoint loads at stage 0 and the two go on identically.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

#include "gpt.hpp"

#include "distributed_gtest.hpp"
#include "error_of.hpp"
#include "worker_helpers.hpp"
#include "zero_training.hpp"

using namespace accelerate;
using namespace accelerate::testing;
namespace fs = std::filesystem;

namespace accelerate::testing {
std::shared_ptr<ProcessState> g_state;
}

TEST(Zero, Stage1And2EqualStage0WithSmallBuckets) {
  // 10 KB buckets: the 34k parameters fill 14 buckets, and many parameters straddle the shard boundaries.
  const auto s0 = train_gpt(0, 0.01), s1 = train_gpt(1, 0.01), s2 = train_gpt(2, 0.01);
  EXPECT_LE(relative_difference(s1.params, s0.params), kTolerance);
  EXPECT_LE(relative_difference(s2.params, s0.params), kTolerance);
  EXPECT_NEAR(s1.loss, s0.loss, kTolerance * s0.loss);
  EXPECT_NEAR(s2.loss, s0.loss, kTolerance * s0.loss);
  expect_same_on_every_rank(s1.params);
  expect_same_on_every_rank(s2.params);
  // Training moved the parameters: the comparison is not between two untouched models.
  gpt::Gpt fresh(kConfig);
  EXPECT_GT(relative_difference(s0.params, fresh->parameters()), 1e-2);
}

TEST(Zero, Stage2EqualsStage0WithOneBucketAndNoAccumulation) {
  const auto s0 = train_gpt(0, 25, {.accumulation = 1}), s2 = train_gpt(2, 25, {.accumulation = 1});
  EXPECT_LE(relative_difference(s2.params, s0.params), kTolerance);
  EXPECT_NEAR(s2.loss, s0.loss, kTolerance * s0.loss);
}

TEST(Zero, ShardsHoldAboutOneNthOfStateAndGradients) {
  const double n = g_state->num_processes();
  const auto s0 = train_gpt(0, 0.01), s1 = train_gpt(1, 0.01), s2 = train_gpt(2, 0.01);
  auto about = [&](int64_t shard, int64_t whole) { return std::abs(shard * n / whole - 1.0) < 0.1; };
  EXPECT_TRUE(about(s1.optimizer_state_bytes, s0.optimizer_state_bytes))
      << s1.optimizer_state_bytes << " vs " << s0.optimizer_state_bytes;
  EXPECT_TRUE(about(s2.optimizer_state_bytes, s0.optimizer_state_bytes));
  EXPECT_EQ(s1.gradient_bytes, s0.gradient_bytes);  // stage 1 keeps the full averaged gradients
  EXPECT_TRUE(about(s2.gradient_bytes, s0.gradient_bytes)) << s2.gradient_bytes << " vs " << s0.gradient_bytes;
  // The total over the ranks is the whole state (nothing kept twice, nothing lost).
  const auto total = reduce(*g_state, torch::tensor({s1.optimizer_state_bytes}), Reduction::Sum).item<int64_t>();
  EXPECT_EQ(total, s0.optimizer_state_bytes);
}

TEST(Zero, OverflowOnOneShardSkipsTheStepOnEveryRank) {
  for (int stage : {1, 2}) {
    Accelerator acc(g_state, fp16_options(stage));
    gpt::Gpt model(kConfig);
    torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
    auto [net, opt] = acc.prepare(model, adamw);
    auto ids = torch::randint(0, 256, {2, 16}, torch::kLong).to(acc.device());
    std::vector<torch::Tensor> before;
    for (const auto& p : net->parameters()) before.push_back(p.detach().clone());
    torch::Tensor loss;
    {
      auto autocast = acc.autocast();
      loss = net->loss(ids, ids);
    }
    acc.backward(loss);
    if (acc.is_main_process()) {
      // An overflow in rank 0's shard only: its first piece (stage 2), or the first element of the last parameter,
      // which opens the first bucket, whose first shard is rank 0's (stage 1: every rank holds the full gradient).
      auto grad = stage == 2 ? opt.param_groups()[0].params()[0].grad() : net->parameters().back().grad();
      torch::NoGradGuard no_grad;
      grad.view(-1)[0] = std::numeric_limits<float>::infinity();
    }
    opt.step();
    const auto skipped = reduce(*g_state, torch::tensor({opt.step_was_skipped() ? 1 : 0}), Reduction::Sum);
    EXPECT_EQ(skipped.item<int64_t>(), g_state->num_processes()) << "stage " << stage;
    for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(net->parameters()[i], before[i]));
    opt.zero_grad();
  }
}

TEST(Zero, Stage2CheckpointResumesAtStage0AndBack) { expect_checkpoint_round_trip(2, 1); }

TEST(Zero, OptimizerPreparedBeforeItsModelIsAClearError) {
  Accelerator acc(g_state, options_for(2, 25, 1));
  gpt::Gpt model(kConfig);
  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
  const auto error = error_of<ConfigError>([&] { acc.prepare(adamw); });
  EXPECT_NE(error.find("Prepare the model first"), std::string::npos) << error;
}

TEST(Zero, UnsupportedOptimizerIsAClearError) {
  Accelerator acc(g_state, options_for(1, 25, 1));
  gpt::Gpt model(kConfig);
  torch::optim::LBFGS lbfgs(model->parameters());
  acc.prepare(model);
  EXPECT_THROW(acc.prepare(lbfgs), ConfigError);
}

int main(int argc, char** argv) {
  return accelerate::testing::run_distributed_tests(argc, argv, g_state, "zero_worker");
}
