// What the ZeRO workers (zero_worker, zero3_worker) share: the GPT test model trained 20 optimizer steps at a
// given stage, and the comparison of parameters across stages. Each worker defines g_state.
#pragma once

#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "gpt.hpp"

#include "worker_helpers.hpp"

namespace accelerate::testing {

extern std::shared_ptr<ProcessState> g_state;

inline const gpt::Config kConfig{.vocab_size = 256, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32};

struct Trained {
  std::vector<torch::Tensor> params;  // named_parameters() order
  double loss = 0;                    // on a fixed batch after training
  int64_t optimizer_state_bytes = 0;
  int64_t gradient_bytes = 0;   // after the last sync backward
  int64_t parameter_bytes = 0;  // after training (stage 3: the shards and the parameters outside units)
};

inline AcceleratorOptions options_for(int stage, double bucket_cap_mb, int accumulation) {
  AcceleratorOptions options;
  options.cpu = !g_state->device().is_cuda();  // scripts/gpu-check.sh runs these on a GPU too
  options.gradient_accumulation_steps = accumulation;
  options.seed = 5;
  options.zero_stage = stage;
  options.ddp.bucket_cap_mb = bucket_cap_mb;
  return options;
}

/// fp16 with its GradScaler (on the CPU too), 10 KB buckets, no accumulation.
inline AcceleratorOptions fp16_options(int stage) {
  auto options = options_for(stage, 0.01, 1);
  options.mixed_precision = "fp16";
  options.fp16_on_cpu = true;
  return options;
}

/// One training step of the GPT job's loop.
template <class M>
void train_step(Accelerator& acc, M& net, AcceleratedOptimizer& opt, const Batch& batch, int64_t* grad_bytes) {
  auto step = acc.accumulate(net);
  acc.backward(net->loss(batch.at("input_ids"), batch.at("labels")));
  if (acc.sync_gradients()) {
    if (grad_bytes) *grad_bytes = accelerate::gradient_bytes(net->parameters(), opt.optimizer());
    acc.clip_grad_norm_(net->parameters(), 0.5);  // small enough to clip on every step
  }
  opt.step();
  opt.zero_grad();
}

struct TrainOptions {
  int accumulation = 2;
  bool gradient_checkpointing = false;
  FsdpOptions fsdp{};
};

/// 20 optimizer steps (4 epochs of 5) at `stage`, 2 sequences per process and micro-step.
inline Trained train_gpt(int stage, double bucket_cap_mb, TrainOptions train = {}) {
  const int64_t per_process = 2, global_batch = per_process * g_state->num_processes() * train.accumulation;
  torch::manual_seed(4321);
  auto windows = torch::randint(0, 256, {5 * global_batch, 17}, torch::kLong);
  auto options = options_for(stage, bucket_cap_mb, train.accumulation);
  options.fsdp = train.fsdp;
  Accelerator acc(g_state, options);
  EXPECT_EQ(acc.zero_stage(), stage);
  auto config = kConfig;
  config.gradient_checkpointing = train.gradient_checkpointing;
  gpt::Gpt model(config);
  torch::optim::AdamW adamw(model->param_groups(1e-3, 0.1), torch::optim::AdamWOptions(1e-3));
  DataLoader loader(std::make_shared<TokenWindows>(windows), {.batch_size = per_process, .shuffle = true, .seed = 17});
  auto [net, opt, dl] = acc.prepare(model, adamw, loader);
  Trained out;
  for (int epoch = 0; epoch < 4; ++epoch) {
    for (auto& batch : dl) train_step(acc, net, opt, batch, &out.gradient_bytes);
  }
  out.optimizer_state_bytes = accelerate::optimizer_state_bytes(opt.optimizer());
  out.parameter_bytes = accelerate::parameter_bytes(net->parameters(), opt.optimizer());
  torch::NoGradGuard no_grad;
  windows = windows.to(acc.device());
  out.loss =
      net->loss(windows.narrow(0, 0, 8).narrow(1, 0, 16), windows.narrow(0, 0, 8).narrow(1, 1, 16)).item<double>();
  auto whole = acc.summon_full_params(net);  // stage 3: the parameters exist between steps only as shards
  for (const auto& p : net->parameters()) out.params.push_back(p.detach().cpu().clone());
  return out;
}

/// The elements of each parameter that the comparison covers: all but the attention's key biases. Softmax does
/// not change when a key bias shifts every score of a query alike, so their gradient is zero in exact arithmetic
/// and rounding noise in floats; Adam divides by that noise's own magnitude and turns it into lr-sized random
/// steps, so any change of rounding (a sum in another order: the reduce-scatter of 4 ranks, the clip norm summed
/// by pieces) moves them by ~lr. They do not change the model's outputs (the loss is compared too).
inline torch::Tensor compared(const std::string& name, const torch::Tensor& p) {
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
inline double relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  static const auto names = gpt::Gpt(kConfig)->named_parameters().keys();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = compared(names.at(i), a[i]), y = compared(names.at(i), b[i]);
    worst = std::max(worst, ((x - y).abs().max() / y.abs().max().clamp_min(1e-12)).item<double>());
  }
  return worst;
}

inline void expect_same_on_every_rank(const std::vector<torch::Tensor>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    auto all = gather(*g_state, params[i].reshape({1, -1}));
    for (int r = 1; r < all.size(0); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << "param " << i << " rank " << r;
  }
}

inline AcceleratorOptions with_fsdp(AcceleratorOptions options, FsdpOptions fsdp) {
  options.fsdp = fsdp;
  return options;
}

/// A model, AdamW and a fixed batch per rank, prepared at `stage`.
struct Job {
  Accelerator acc;
  gpt::Gpt model{kConfig};
  torch::optim::AdamW adamw{model->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1)};
  AcceleratedOptimizer* opt = nullptr;
  explicit Job(int stage, FsdpOptions fsdp = {}) : acc(g_state, with_fsdp(options_for(stage, 0.01, 1), fsdp)) {
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
  /// Copies of the parameters (collective: gathered whole at stage 3).
  std::vector<torch::Tensor> params() {
    auto whole = acc.summon_full_params(model);
    std::vector<torch::Tensor> out;
    for (const auto& p : model->parameters()) out.push_back(p.detach().cpu().clone());
    return out;
  }
};

/// A checkpoint of `stage` loads at stage 0 (exactly) and both go on identically; then stage 0's loads at
/// `back_stage` and those two go on identically too.
inline void expect_checkpoint_round_trip(int stage, int back_stage) {
  const auto dir = shared_temp_dir(*g_state, "zero_stage" + std::to_string(stage)),
             back = shared_temp_dir(*g_state, "zero_stage0");
  Job sharded(stage);
  torch::manual_seed(11 + g_state->process_index());
  sharded.train(3);
  sharded.acc.save_state(dir);
  Job replicated(0);
  replicated.acc.load_state(dir);
  const auto saved = sharded.params(), loaded = replicated.params();
  for (size_t i = 0; i < saved.size(); ++i) EXPECT_TRUE(torch::equal(loaded[i], saved[i])) << "parameter " << i;
  // The same data from here on: both continue identically (the state was consolidated and cut exactly).
  torch::manual_seed(99 + g_state->process_index());
  sharded.train(3);
  torch::manual_seed(99 + g_state->process_index());
  replicated.train(3);
  EXPECT_LE(relative_difference(sharded.params(), replicated.params()), kTolerance);
  // And back: stage 0's checkpoint into a fresh job at `back_stage`.
  replicated.acc.save_state(back);
  Job again(back_stage);
  again.acc.load_state(back);
  torch::manual_seed(7 + g_state->process_index());
  replicated.train(2);
  torch::manual_seed(7 + g_state->process_index());
  again.train(2);
  EXPECT_LE(relative_difference(again.params(), replicated.params()), kTolerance);
  if (g_state->is_main_process()) std::filesystem::remove_all(dir), std::filesystem::remove_all(back);
}

}  // namespace accelerate::testing
