// Schedules as in transformers/optimization.py (the lambdas of get_*_schedule_with_warmup).
#include <accelerate/scheduler.hpp>

#include "detail/schedules.hpp"

#include <accelerate/error.hpp>
#include <accelerate/optimizer.hpp>

#include <cmath>

namespace accelerate {

LRScheduler::LRScheduler(torch::optim::Optimizer& optimizer, std::function<double(int64_t)> lambda)
    : optimizer_(optimizer), lambda_(std::move(lambda)) {
  for (auto& group : optimizer_.param_groups()) base_lrs_.push_back(group.options().get_lr());
  apply();
}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

void LRScheduler::apply() {
  const double factor = lambda_(last_epoch_);
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lrs_[i] * factor);
}

std::vector<double> LRScheduler::get_last_lr() const {
  std::vector<double> lrs;
  for (auto& group : optimizer_.param_groups()) lrs.push_back(group.options().get_lr());
  return lrs;
}

std::function<double(int64_t)> detail::schedule_lambda(const std::string& name, const SchedulerOptions& o,
                                                       double initial_lr) {
  const double warmup = static_cast<double>(o.num_warmup_steps);
  const double total = static_cast<double>(o.num_training_steps);
  ACCELERATE_CHECK(o.num_warmup_steps >= 0, ConfigError, "num_warmup_steps must be >= 0, got ", o.num_warmup_steps,
                   ".");
  auto warming = [warmup](double step) { return step / std::max(1.0, warmup); };
  auto needs_total = [&] {
    ACCELERATE_CHECK(o.num_training_steps > 0, ConfigError, "the '", name,
                     "' schedule needs num_training_steps > 0 (the number of optimizer steps of the run).");
  };
  if (name == "constant") return [](int64_t) { return 1.0; };
  if (name == "constant_with_warmup") {
    return [=](int64_t s) { return s < o.num_warmup_steps ? warming(static_cast<double>(s)) : 1.0; };
  }
  if (name == "linear") {
    needs_total();
    return [=](int64_t s) {
      const double step = static_cast<double>(s);
      if (step < warmup) return warming(step);
      return std::max(0.0, (total - step) / std::max(1.0, total - warmup));
    };
  }
  if (name == "cosine" || name == "cosine_with_restarts") {
    needs_total();
    const bool restarts = name == "cosine_with_restarts";
    const double cycles = o.num_cycles >= 0 ? o.num_cycles : (restarts ? 1.0 : 0.5);
    return [=](int64_t s) {
      const double step = static_cast<double>(s);
      if (step < warmup) return warming(step);
      const double progress = (step - warmup) / std::max(1.0, total - warmup);
      if (!restarts) return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * cycles * 2.0 * progress)));
      if (progress >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::fmod(cycles * progress, 1.0))));
    };
  }
  if (name == "polynomial") {
    needs_total();
    ACCELERATE_CHECK(initial_lr > o.lr_end, ConfigError, "polynomial schedule: lr_end (", o.lr_end,
                     ") must be smaller than the initial lr (", initial_lr, ").");
    return [=](int64_t s) {
      const double step = static_cast<double>(s);
      if (step < warmup) return warming(step);
      if (step > total) return o.lr_end / initial_lr;
      const double remaining = 1.0 - (step - warmup) / (total - warmup);
      return ((initial_lr - o.lr_end) * std::pow(remaining, o.power) + o.lr_end) / initial_lr;
    };
  }
  throw ConfigError(detail::concat("Unknown scheduler '", name,
                                   "'. Choose between: constant, constant_with_warmup, "
                                   "linear, cosine, cosine_with_restarts, polynomial."));
}

LRScheduler get_scheduler(const std::string& name, torch::optim::Optimizer& optimizer, SchedulerOptions options) {
  ACCELERATE_CHECK(!optimizer.param_groups().empty(), ConfigError, "get_scheduler: the optimizer has no param groups.");
  return LRScheduler(optimizer, detail::schedule_lambda(name, options, optimizer.param_groups()[0].options().get_lr()));
}

AcceleratedScheduler::AcceleratedScheduler(LRScheduler& scheduler, std::vector<AcceleratedOptimizer*> optimizers,
                                           GradientState& gradient_state, bool step_with_optimizer, bool split_batches,
                                           int num_processes)
    : scheduler_(scheduler),
      alive_(scheduler.lifetime().watch()),
      optimizers_(std::move(optimizers)),
      gradient_state_(gradient_state),
      step_with_optimizer_(step_with_optimizer),
      split_batches_(split_batches),
      num_processes_(num_processes) {}

void AcceleratedScheduler::step() {
  ACCELERATE_CHECK(alive(), StateError,
                   "scheduler.step(): the LRScheduler this prepared scheduler steps was destroyed; keep it alive while "
                   "training, or prepare the new one.");
  if (!step_with_optimizer_) {
    scheduler_.step();
    return;
  }
  if (!gradient_state_.sync_gradients()) return;
  for (auto* o : optimizers_) {
    if (o->step_was_skipped()) return;  // fp16 overflow: the optimizer did not step, neither does the LR
  }
  const int times = split_batches_ ? 1 : num_processes_;
  for (int i = 0; i < times; ++i) scheduler_.step();
}

}  // namespace accelerate
