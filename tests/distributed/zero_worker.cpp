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
#include "worker_helpers.hpp"

using namespace accelerate;
using accelerate::testing::TokenWindows;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<ProcessState> g_state;

const gpt::Config kConfig{.vocab_size = 256, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32};

struct Trained {
  std::vector<torch::Tensor> params;  // named_parameters() order
  double loss = 0;                    // on a fixed batch after training
  int64_t optimizer_state_bytes = 0;
  int64_t gradient_bytes = 0;  // after the last sync backward
};

AcceleratorOptions options_for(int stage, double bucket_cap_mb, int accumulation) {
  AcceleratorOptions options;
  options.cpu = !g_state->device().is_cuda();  // scripts/gpu-check.sh runs these on a GPU too
  options.gradient_accumulation_steps = accumulation;
  options.seed = 5;
  options.zero_stage = stage;
  options.ddp.bucket_cap_mb = bucket_cap_mb;
  return options;
}

/// One training step of the GPT job's loop.
template <class M>
void train_step(Accelerator& acc, M& net, AcceleratedOptimizer& opt, const Batch& batch, int64_t* grad_bytes) {
  auto step = acc.accumulate(net);
  acc.backward(net->loss(batch.at("input_ids"), batch.at("labels")));
  if (acc.sync_gradients()) {
    if (grad_bytes) *grad_bytes = gradient_bytes(net->parameters(), opt.optimizer());
    acc.clip_grad_norm_(net->parameters(),
                        0.5);  // small enough to clip on every step  // small enough to clip on every step
  }
  opt.step();
  opt.zero_grad();
}

/// 20 optimizer steps (4 epochs of 5) at `stage`, 2 sequences per process and micro-step.
Trained train_gpt(int stage, double bucket_cap_mb, int accumulation = 2) {
  const int64_t per_process = 2, global_batch = per_process * g_state->num_processes() * accumulation;
  torch::manual_seed(4321);
  auto windows = torch::randint(0, 256, {5 * global_batch, 17}, torch::kLong);
  Accelerator acc(g_state, options_for(stage, bucket_cap_mb, accumulation));
  EXPECT_EQ(acc.zero_stage(), stage);
  gpt::Gpt model(kConfig);
  torch::optim::AdamW adamw(model->param_groups(1e-3, 0.1), torch::optim::AdamWOptions(1e-3));
  DataLoader loader(std::make_shared<TokenWindows>(windows), {.batch_size = per_process, .shuffle = true, .seed = 17});
  auto [net, opt, dl] = acc.prepare(model, adamw, loader);
  Trained out;
  for (int epoch = 0; epoch < 4; ++epoch) {
    for (auto& batch : dl) train_step(acc, net, opt, batch, &out.gradient_bytes);
  }
  out.optimizer_state_bytes = optimizer_state_bytes(opt.optimizer());
  for (const auto& p : net->parameters()) out.params.push_back(p.detach().cpu());
  torch::NoGradGuard no_grad;
  windows = windows.to(acc.device());
  out.loss =
      net->loss(windows.narrow(0, 0, 8).narrow(1, 0, 16), windows.narrow(0, 0, 8).narrow(1, 1, 16)).item<double>();
  return out;
}

/// The elements of each parameter that the comparison covers: all but the attention's key biases. Softmax does
/// not change when a key bias shifts every score of a query alike, so their gradient is zero in exact arithmetic
/// and rounding noise in floats; Adam divides by that noise's own magnitude and turns it into lr-sized random
/// steps, so any change of rounding (a sum in another order: the reduce-scatter of 4 ranks, the clip norm summed
/// by pieces) moves them by ~lr. They do not change the model's outputs (the loss is compared too).
torch::Tensor compared(const std::string& name, const torch::Tensor& p) {
  if (name.ends_with("attn.c_attn.bias")) {
    const int64_t d = p.size(0) / 3;
    return torch::cat({p.narrow(0, 0, d), p.narrow(0, 2 * d, d)});
  }
  return p;
}

/// How far a sharded run may be from the replicated one (relative): the summation order of the reductions differs,
/// and Adam turns rounding into lr-sized steps. Measured up to 1.6e-6 (4 processes, an AMD EPYC; 1e-6 on another
/// CPU); a shard boundary off by one element gives about 100.
constexpr double kTolerance = 1e-5;

/// max over parameters of max|a - b| / max|b|, over the compared elements.
double relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  static const auto names = gpt::Gpt(kConfig)->named_parameters().keys();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = compared(names.at(i), a[i]), y = compared(names.at(i), b[i]);
    worst = std::max(worst, ((x - y).abs().max() / y.abs().max().clamp_min(1e-12)).item<double>());
  }
  return worst;
}

void expect_same_on_every_rank(const std::vector<torch::Tensor>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    auto all = gather(*g_state, params[i].reshape({1, -1}));
    for (int r = 1; r < all.size(0); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << "param " << i << " rank " << r;
  }
}

}  // namespace

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
  const auto s0 = train_gpt(0, 25, 1), s2 = train_gpt(2, 25, 1);
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
    auto options = options_for(stage, 0.01, 1);
    options.mixed_precision = "fp16";
    options.fp16_on_cpu = true;
    Accelerator acc(g_state, options);
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

namespace {

/// A model, AdamW and a fixed batch per rank, prepared at `stage`.
struct Job {
  Accelerator acc;
  gpt::Gpt model{kConfig};
  torch::optim::AdamW adamw{model->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1)};
  AcceleratedOptimizer* opt = nullptr;
  explicit Job(int stage) : acc(g_state, options_for(stage, 0.01, 1)) {
    acc.prepare(model);
    opt = &acc.prepare(adamw);
  }
  void train(int steps) {
    for (int i = 0; i < steps; ++i) {
      auto ids = torch::randint(0, 256, {2, 17}, torch::kLong).to(acc.device());
      Batch batch{{"input_ids", ids.narrow(1, 0, 16)}, {"labels", ids.narrow(1, 1, 16)}};
      train_step(acc, model, *opt, batch, nullptr);
    }
  }
};

}  // namespace

TEST(Zero, Stage2CheckpointResumesAtStage0AndBack) {
  const auto dir = accelerate::testing::shared_temp_dir(*g_state, "zero_stage2"),
             back = accelerate::testing::shared_temp_dir(*g_state, "zero_stage0");
  Job sharded(2);
  torch::manual_seed(11 + g_state->process_index());
  sharded.train(3);
  sharded.acc.save_state(dir);
  Job replicated(0);
  replicated.acc.load_state(dir);
  for (size_t i = 0; i < sharded.model->parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(replicated.model->parameters()[i], sharded.model->parameters()[i]));
  }
  // The same data from here on: both continue identically (the state was consolidated and cut exactly).
  torch::manual_seed(99 + g_state->process_index());
  sharded.train(3);
  torch::manual_seed(99 + g_state->process_index());
  replicated.train(3);
  EXPECT_LE(relative_difference(sharded.model->parameters(), replicated.model->parameters()), kTolerance);
  // And back: stage 0's checkpoint into a fresh stage-1 job.
  replicated.acc.save_state(back);
  Job again(1);
  again.acc.load_state(back);
  torch::manual_seed(7 + g_state->process_index());
  replicated.train(2);
  torch::manual_seed(7 + g_state->process_index());
  again.train(2);
  EXPECT_LE(relative_difference(again.model->parameters(), replicated.model->parameters()), kTolerance);
  if (g_state->is_main_process()) fs::remove_all(dir), fs::remove_all(back);
}

TEST(Zero, OptimizerPreparedBeforeItsModelIsAClearError) {
  Accelerator acc(g_state, options_for(2, 25, 1));
  gpt::Gpt model(kConfig);
  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
  try {
    acc.prepare(adamw);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("Prepare the model first"), std::string::npos) << e.what();
  }
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
