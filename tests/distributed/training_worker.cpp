// Equivalence of the prepared loop with a plain LibTorch loop, in every rank (1, 2 or 4 processes, CPU, fp32):
// each rank trains with the Accelerator and, locally, a reference model on the global batches of one process.
// After 20 optimizer steps the parameters must agree within 1e-6: N processes with per-process batch b ==
// 1 process with batch N*b; k accumulation steps == one step of k times the batch; split_batches on and off.
// The same for the GPT example's model and loop (AdamW, clipping, named-tensor batches from loader workers) within
// 1e-5 after 10 steps.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "detail/sharding.hpp"
#include "gpt.hpp"
#include "detail/schedules.hpp"

#include "distributed_gtest.hpp"
#include "worker_helpers.hpp"

using namespace accelerate;
using accelerate::testing::TokenWindows;

namespace {

std::shared_ptr<ProcessState> g_state;  // one rendezvous for the whole program, shared by every Accelerator

struct MlpImpl : torch::nn::Module {
  MlpImpl() : a(register_module("a", torch::nn::Linear(6, 16))), b(register_module("b", torch::nn::Linear(16, 3))) {}
  torch::Tensor forward(torch::Tensor x) { return b(torch::tanh(a(x))); }
  torch::nn::Linear a, b;
};
TORCH_MODULE(Mlp);

struct Run {
  int64_t per_process_batch;  // what each process takes per micro-step
  int accumulation;
  bool split_batches;
};

double max_difference(torch::nn::Module& x, torch::nn::Module& y) {
  double worst = 0;
  auto px = x.parameters(), py = y.parameters();
  for (size_t i = 0; i < px.size(); ++i) worst = std::max(worst, (px[i] - py[i]).abs().max().item<double>());
  return worst;
}

// Trains with the Accelerator and with a reference loop; returns the max parameter difference on this rank.
double train_both(const Run& run) {
  const int64_t world = g_state->num_processes();
  const int64_t global_batch = run.per_process_batch * world * run.accumulation;
  const int64_t samples = 5 * global_batch;  // 5 optimizer steps per epoch, 4 epochs: 20 steps
  torch::manual_seed(1234);
  auto x = torch::randn({samples, 6});
  auto y = torch::randint(0, 3, {samples}, torch::kLong);

  AcceleratorOptions options;
  options.cpu = true;
  options.gradient_accumulation_steps = run.accumulation;
  options.split_batches = run.split_batches;
  options.seed = 7;  // same initial weights everywhere (and DDP broadcasts rank 0's anyway)
  Accelerator acc(g_state, options);
  Mlp model, reference;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < model->parameters().size(); ++i) reference->parameters()[i].copy_(model->parameters()[i]);
  }
  {
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    torch::optim::SGD ref_sgd(reference->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    const int64_t loader_batch = run.split_batches ? run.per_process_batch * world : run.per_process_batch;
    DataLoader loader(std::make_shared<TensorDataset>(x, y), {.batch_size = loader_batch, .shuffle = true, .seed = 99});
    auto [net, opt, dl] = acc.prepare(model, sgd, loader);
    for (int epoch = 0; epoch < 4; ++epoch) {
      // Reference: one process, the same epoch order, batches of the whole global step.
      auto gen = at::make_generator<at::CPUGeneratorImpl>(99 + epoch);
      auto order = accelerate::detail::epoch_order(samples, true, &gen);
      for (const auto& indices : accelerate::detail::make_batches(order, global_batch, false)) {
        auto idx = torch::tensor(indices, torch::kLong);
        auto loss = torch::cross_entropy_loss(reference->forward(x.index_select(0, idx)), y.index_select(0, idx));
        ref_sgd.zero_grad();
        loss.backward();
        ref_sgd.step();
      }
      for (auto& batch : dl) {
        auto step = acc.accumulate(net);
        acc.backward(torch::cross_entropy_loss(net->forward(batch.data), batch.target));
        opt.step();
        opt.zero_grad();
      }
    }
  }
  return max_difference(*model, *reference);
}

}  // namespace

TEST(Equivalence, DataParallelEqualsOneProcessWithTheGlobalBatch) {
  EXPECT_LE(train_both({.per_process_batch = 4, .accumulation = 1, .split_batches = false}), 1e-6);
}

TEST(Equivalence, AccumulationEqualsOneBigBatch) {
  EXPECT_LE(train_both({.per_process_batch = 2, .accumulation = 3, .split_batches = false}), 1e-6);
}

TEST(Equivalence, SplitBatchesEqualsOneProcess) {
  EXPECT_LE(train_both({.per_process_batch = 2, .accumulation = 1, .split_batches = true}), 1e-6);
}

TEST(Equivalence, SplitBatchesWithAccumulation) {
  EXPECT_LE(train_both({.per_process_batch = 3, .accumulation = 2, .split_batches = true}), 1e-6);
}

TEST(Scheduler, StepsByHfRulesWithAccumulationAcrossProcesses) {
  // 2 accumulation micro-steps per optimizer step; with N processes the schedule advances N per optimizer step
  // (it is written for the unprepared loader), and only on sync micro-steps.
  AcceleratorOptions options;
  options.cpu = true;
  options.gradient_accumulation_steps = 2;
  Accelerator acc(g_state, options);
  Mlp model;
  torch::optim::SGD sgd(model->parameters(), 0.1);
  SchedulerOptions so{.num_warmup_steps = 2, .num_training_steps = 40};
  auto schedule = get_scheduler("linear", sgd, so);
  auto x = torch::randn({8 * acc.num_processes() * 10, 6});
  DataLoader loader(std::make_shared<TensorDataset>(x, torch::zeros({x.size(0)}, torch::kLong)), {.batch_size = 8});
  auto [net, opt, dl, sched] = acc.prepare(model, sgd, loader, schedule);
  const auto lambda = accelerate::detail::schedule_lambda("linear", so, 0.1);
  int64_t optimizer_steps = 0;
  for (auto& batch : dl) {
    auto step = acc.accumulate(net);
    acc.backward(torch::cross_entropy_loss(net->forward(batch.data), batch.target));
    opt.step();
    sched.step();
    opt.zero_grad();
    if (acc.sync_gradients()) ++optimizer_steps;
    EXPECT_NEAR(sched.get_last_lr()[0], 0.1 * lambda(optimizer_steps * acc.num_processes()), 1e-12);
  }
  EXPECT_EQ(optimizer_steps, 5);  // 10 batches per process, 2 per optimizer step
}

TEST(Equivalence, ReplicasStayIdentical) {
  // After training, every rank holds the same weights (DDP's invariant).
  AcceleratorOptions options;
  options.cpu = true;
  Accelerator acc(g_state, options);
  Mlp model;
  torch::optim::SGD sgd(model->parameters(), 0.1);
  auto x = torch::randn({32, 6}) + acc.process_index();  // different data on every rank
  auto y = torch::zeros({32}, torch::kLong);
  auto [net, opt] = acc.prepare(model, sgd);
  for (int i = 0; i < 5; ++i) {
    acc.backward(torch::cross_entropy_loss(net->forward(x), y));
    opt.step();
    opt.zero_grad();
  }
  for (const auto& p : net->parameters()) {
    auto all = acc.gather(p.detach().reshape({1, -1}));
    for (int r = 1; r < all.size(0); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << "rank " << r << " diverged";
  }
}

// Issue 10, case 7: with per-rank seeds (set_seed(42, device_specific=true)), a frozen random parameter and a
// buffer start different on every rank; as torch DDP, prepare makes them rank 0's, and training keeps the buffers
// identical (broadcast_buffers).
TEST(Equivalence, FrozenParametersAndBuffersAreRank0s) {
  struct FrozenImpl : torch::nn::Module {
    FrozenImpl()
        : trained(register_module("trained", torch::nn::Linear(4, 4))),
          frozen(register_parameter("frozen", torch::randn({4}), /*requires_grad=*/false)),
          running(register_buffer("running", torch::randn({4}))) {}
    torch::Tensor forward(const torch::Tensor& x) {
      running.mul_(0.5).add_(x.detach().mean(0));  // a statistic that differs per rank, as BatchNorm's
      return trained(x) + frozen;
    }
    torch::nn::Linear trained;
    torch::Tensor frozen, running;
  };
  AcceleratorOptions options;
  options.cpu = true;
  Accelerator acc(g_state, options);
  acc.set_seed(42, /*device_specific=*/true);
  auto model = std::make_shared<FrozenImpl>();
  torch::optim::SGD sgd(model->trained->parameters(), 0.1);
  auto same_everywhere = [&](const torch::Tensor& t, const char* what) {
    auto all = acc.gather(t.detach().reshape({1, -1}));
    for (int r = 1; r < all.size(0); ++r)
      EXPECT_TRUE(torch::equal(all[r], all[0])) << what << ": rank " << r << " differs";
  };
  acc.prepare(model);
  auto& opt = acc.prepare(sgd);
  same_everywhere(model->frozen, "frozen parameter after prepare");
  same_everywhere(model->running, "buffer after prepare");
  for (int i = 0; i < 3; ++i) {
    auto x = torch::randn({8, 4}) + acc.process_index();  // different data on every rank
    acc.backward(model->forward(x).pow(2).mean());
    opt.step();
    opt.zero_grad();
  }
  same_everywhere(model->frozen, "frozen parameter after training");
  same_everywhere(model->running, "buffer after training");
  same_everywhere(model->trained->weight, "trained weight");
}

// ---- random augmentation: each rank draws its own numbers (HF's device_specific seeding, torchtune's seed + rank)
namespace {
class AugmentedDataset final : public Dataset {
 public:
  int64_t size() const override { return 16; }
  Batch get(int64_t) const override { return {at::rand({3}, data_generator()), torch::tensor(0)}; }
};
}  // namespace

TEST(DataLoaderSeeds, EveryRankDrawsItsOwnAugmentation) {
  if (g_state->num_processes() < 2) GTEST_SKIP() << "needs two ranks";
  for (std::optional<int64_t> seed : {std::optional<int64_t>{}, std::optional<int64_t>{7}}) {
    for (int workers : {0, 1}) {
      AcceleratorOptions options;
      options.cpu = true;
      Accelerator acc(g_state, options);
      acc.set_seed(42, /*device_specific=*/true);
      DataLoader loader(std::make_shared<AugmentedDataset>(), {.batch_size = 2, .seed = seed, .num_workers = workers});
      auto& prepared = acc.prepare(loader);
      for (auto& batch : prepared) {
        auto all = acc.gather(batch.data);  // [2 * world, 3]
        for (int64_t r = 1; r < acc.num_processes(); ++r)
          EXPECT_FALSE(at::equal(all.narrow(0, 2 * r, 2), all.narrow(0, 0, 2)))
              << "rank " << r << " drew rank 0's numbers (seed " << seed.value_or(-1) << ", " << workers << " workers)";
      }
    }
  }
}

// ---- find_executable_batch_size: every process takes the same batch size on every attempt ----
namespace {

enum class Where { Forward, AfterTraining };

/// Trains the MLP for 3 steps with `batch_size`; rank 1 runs out of memory above `limit` (injected), in the second
/// step's forward or after the loop. Returns the batch size, and counts the attempts.
int64_t train_until_it_fits(Accelerator& acc, int64_t batch_size, int64_t limit, Where where, int* attempts) {
  ++*attempts;
  auto oom = [&] {
    if (acc.process_index() == 1 && batch_size > limit) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "injected: CUDA out of memory. Tried to allocate 2.00 GiB");
    }
  };
  Mlp model;
  torch::optim::SGD sgd(model->parameters(), 0.1);
  auto x = torch::randn({batch_size * acc.num_processes() * 3, 6});
  DataLoader loader(std::make_shared<TensorDataset>(x, torch::zeros({x.size(0)}, torch::kLong)),
                    {.batch_size = batch_size});
  auto [net, opt, dl] = acc.prepare(model, sgd, loader);
  int step = 0;
  for (auto& batch : dl) {
    auto accumulate = acc.accumulate(net);
    auto logits = net->forward(batch.data);
    if (++step == 2 && where == Where::Forward) oom();
    acc.backward(torch::cross_entropy_loss(logits, batch.target));
    opt.step();
    opt.zero_grad();
  }
  if (where == Where::AfterTraining) oom();
  return batch_size;
}

/// A dataset whose samples run out of memory on rank 1 while the batch is larger than `limit` (as an allocator
/// refusing a sample's tensor in Dataset::get would).
class HungryDataset final : public Dataset {
 public:
  HungryDataset(int64_t size, int64_t batch_size, int64_t limit, int rank)
      : size_(size), oom_(rank == 1 && batch_size > limit) {}
  int64_t size() const override { return size_; }
  Batch get(int64_t index) const override {
    TORCH_CHECK_WITH(OutOfMemoryError, !oom_, "injected: DefaultCPUAllocator: can't allocate memory");
    return {torch::randn({6}), torch::tensor(index % 3)};
  }

 private:
  int64_t size_;
  bool oom_;
};

int64_t train_until_the_data_fits(Accelerator& acc, int64_t batch_size, int num_workers, int* attempts) {
  ++*attempts;
  Mlp model;
  torch::optim::SGD sgd(model->parameters(), 0.1);
  DataLoader loader(
      std::make_shared<HungryDataset>(batch_size * acc.num_processes() * 3, batch_size, 20, acc.process_index()),
      {.batch_size = batch_size, .num_workers = num_workers});
  auto [net, opt, dl] = acc.prepare(model, sgd, loader);
  for (auto& batch : dl) {
    auto accumulate = acc.accumulate(net);
    acc.backward(torch::cross_entropy_loss(net->forward(batch.data), batch.target));
    opt.step();
    opt.zero_grad();
  }
  return batch_size;
}

void expect_same_everywhere(int64_t value, const char* what) {
  auto all = gather(*g_state, torch::tensor({value}));
  for (int r = 1; r < all.size(0); ++r) EXPECT_EQ(all[r].item<int64_t>(), value) << what << " on rank " << r;
}

}  // namespace

TEST(FindExecutableBatchSize, OneProcessOutOfMemoryMovesEveryProcessToTheSameSmallerBatch) {
  for (auto where : {Where::Forward, Where::AfterTraining}) {
    AcceleratorOptions options;
    options.cpu = true;
    Accelerator acc(g_state, options);
    int attempts = 0;
    const auto used = find_executable_batch_size(
        acc, [&](int64_t b) { return train_until_it_fits(acc, b, 24, where, &attempts); }, {.starting_batch_size = 64});
    // 64, 57, 51, 45, 40, 36, 32, 28, 25, 22 (int(b * 0.9) each time, as HF)
    EXPECT_EQ(used, g_state->num_processes() > 1 ? 22 : 64);
    EXPECT_EQ(attempts, g_state->num_processes() > 1 ? 10 : 1);
    expect_same_everywhere(used, "batch size");
    expect_same_everywhere(attempts, "attempts");
  }
}

// docs/training.md: an out-of-memory error in the data (a Dataset::get, a collate) ends the attempt as one in the
// forward does, on every process, with or without loader workers.
TEST(FindExecutableBatchSize, OutOfMemoryInTheDataMovesEveryProcessToASmallerBatch) {
  if (g_state->num_processes() < 2) GTEST_SKIP() << "rank 1 runs out of memory";
  for (int workers : {0, 1}) {
    AcceleratorOptions options;
    options.cpu = true;
    Accelerator acc(g_state, options);
    int attempts = 0;
    const auto used = find_executable_batch_size(
        acc, [&](int64_t b) { return train_until_the_data_fits(acc, b, workers, &attempts); },
        {.starting_batch_size = 64});
    EXPECT_EQ(used, 19) << workers << " workers";  // 64 57 51 45 40 36 32 28 25 22 19
    EXPECT_EQ(attempts, 11) << workers << " workers";
    expect_same_everywhere(used, "batch size");
  }
}

TEST(FindExecutableBatchSize, KeepGlobalBatchRaisesAccumulation) {
  if (g_state->num_processes() < 2) GTEST_SKIP() << "rank 1 runs out of memory";
  AcceleratorOptions options;
  options.cpu = true;
  Accelerator acc(g_state, options);
  int attempts = 0, accumulation = 0;
  const auto used = find_executable_batch_size(acc,
                                               [&](int64_t b) {
                                                 accumulation = acc.gradient_accumulation_steps();
                                                 return train_until_it_fits(acc, b, 24, Where::Forward, &attempts);
                                               },
                                               {.starting_batch_size = 32, .keep_global_batch = true});
  EXPECT_EQ(used, 16);  // the largest divisor of 32 at most int(32 * 0.9) = 28
  EXPECT_EQ(accumulation, 2);
}

TEST(FindExecutableBatchSize, TheFloorIsAClearErrorOnEveryProcess) {
  if (g_state->num_processes() < 2) GTEST_SKIP() << "rank 1 runs out of memory";
  AcceleratorOptions options;
  options.cpu = true;
  Accelerator acc(g_state, options);
  int attempts = 0;
  try {
    find_executable_batch_size(acc,
                               [&](int64_t b) { return train_until_it_fits(acc, b, 0, Where::Forward, &attempts); },
                               {.starting_batch_size = 40, .min_batch_size = 30});
    FAIL() << "no error";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory at batch size 32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("below min_batch_size 30"), std::string::npos) << e.what();
  }
  EXPECT_EQ(attempts, 3);  // 40, 36, 32
  // Other errors are not retried.
  EXPECT_THROW(find_executable_batch_size(acc, [](int64_t) -> int { throw std::invalid_argument("bad data"); }),
               std::invalid_argument);
}

int main(int argc, char** argv) {
  return accelerate::testing::run_distributed_tests(argc, argv, g_state, "training_worker");
}

namespace {

// The GPT job's loop (AdamW with two parameter groups, clipping, named-tensor batches from 2 loader workers)
// against one process training on the global batches; returns the max parameter difference after 10 steps.
double train_gpt_both(int64_t per_process_batch, int accumulation) {
  const int64_t world = g_state->num_processes(), global_batch = per_process_batch * world * accumulation;
  const int64_t samples = 5 * global_batch;  // 5 optimizer steps per epoch, 2 epochs
  torch::manual_seed(4321);
  auto windows = torch::randint(0, 256, {samples, 17}, torch::kLong);
  AcceleratorOptions options;
  options.cpu = true;
  options.gradient_accumulation_steps = accumulation;
  options.seed = 5;
  Accelerator acc(g_state, options);
  const gpt::Config config{.vocab_size = 256, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32};
  gpt::Gpt model(config), reference(config);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < model->parameters().size(); ++i) reference->parameters()[i].copy_(model->parameters()[i]);
  }
  torch::optim::AdamW adamw(model->param_groups(1e-3, 0.1), torch::optim::AdamWOptions(1e-3));
  torch::optim::AdamW ref_adamw(reference->param_groups(1e-3, 0.1), torch::optim::AdamWOptions(1e-3));
  DataLoader loader(std::make_shared<TokenWindows>(windows),
                    {.batch_size = per_process_batch, .shuffle = true, .seed = 17, .num_workers = 2});
  auto [net, opt, dl] = acc.prepare(model, adamw, loader);
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17 + epoch);
    auto order = accelerate::detail::epoch_order(samples, true, &gen);
    for (const auto& indices : accelerate::detail::make_batches(order, global_batch, false)) {
      auto w = windows.index_select(0, torch::tensor(indices, torch::kLong));
      auto loss = reference->loss(w.narrow(1, 0, 16), w.narrow(1, 1, 16));
      ref_adamw.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(reference->parameters(), 1.0);
      ref_adamw.step();
    }
    for (auto& batch : dl) {
      auto step = acc.accumulate(net);
      acc.backward(net->loss(batch.at("input_ids"), batch.at("labels")));
      if (acc.sync_gradients()) acc.clip_grad_norm_(net->parameters(), 1.0);
      opt.step();
      opt.zero_grad();
    }
  }
  return max_difference(*model, *reference);
}

}  // namespace

TEST(Equivalence, GptDataParallelEqualsOneProcessWithTheGlobalBatch) { EXPECT_LE(train_gpt_both(2, 1), 1e-5); }

TEST(Equivalence, GptAccumulationEqualsOneBigBatch) { EXPECT_LE(train_gpt_both(1, 3), 1e-5); }
