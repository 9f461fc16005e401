// Schedules against transformers' own values, and the prepared scheduler's stepping rules.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

using namespace accelerate;

namespace {
struct ScheduleCase {
  const char* name;
  std::vector<double> lrs;
};
const std::vector<ScheduleCase> kSchedules = {
#include "../parity/scheduler_cases.inc"
};

}  // namespace

TEST(Schedules, MatchTransformers) {
  ASSERT_EQ(kSchedules.size(), 6u);
  for (const auto& c : kSchedules) {
    auto p = torch::zeros({1}, torch::requires_grad());
    torch::optim::SGD opt({p}, 0.1);
    SchedulerOptions o{.num_warmup_steps = 3, .num_training_steps = 20};
    auto sched = get_scheduler(c.name, opt, o);
    for (size_t i = 0; i < c.lrs.size(); ++i) {
      EXPECT_NEAR(sched.get_last_lr()[0], c.lrs[i], 1e-12) << c.name << " after " << i << " steps";
      sched.step();
    }
  }
  auto p = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD opt({p}, 0.1);
  EXPECT_THROW(get_scheduler("cosine_annealing", opt), ConfigError);
  EXPECT_THROW(get_scheduler("linear", opt), ConfigError);  // needs num_training_steps
}

TEST(AcceleratedScheduler, StepsOnSyncOnlyAndOncePerProcess) {
  auto p = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD opt({p}, 1.0);
  auto sched = get_scheduler("linear", opt, {.num_training_steps = 100});
  GradientState gs;
  AcceleratedOptimizer wrapped(opt, gs, nullptr);
  // 2 processes, no split: each optimizer step consumes two batches of the unprepared loader.
  AcceleratedScheduler two(sched, {&wrapped}, gs, true, false, 2);
  gs.set_sync_gradients(false);
  two.step();
  EXPECT_EQ(sched.last_epoch(), 0);  // accumulation micro-step: no LR step
  gs.set_sync_gradients(true);
  two.step();
  EXPECT_EQ(sched.last_epoch(), 2);
  EXPECT_NEAR(sched.get_last_lr()[0], 0.98, 1e-12);
  AcceleratedScheduler split(sched, {&wrapped}, gs, true, /*split_batches=*/true, 2);
  split.step();
  EXPECT_EQ(sched.last_epoch(), 3);
  AcceleratedScheduler free_running(sched, {&wrapped}, gs, /*step_with_optimizer=*/false, false, 2);
  gs.set_sync_gradients(false);
  free_running.step();
  EXPECT_EQ(sched.last_epoch(), 4);
}
