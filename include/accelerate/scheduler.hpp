// Learning-rate schedules with transformers' names and formulas (get_scheduler), and AcceleratedScheduler,
// which steps them by HF Accelerate's rules.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include <accelerate/gradient_state.hpp>
#include <accelerate/lifetime.hpp>

namespace accelerate {

class AcceleratedOptimizer;

/// torch's LambdaLR: lr = base_lr * lambda(step) for every param group; applies lambda(0) at construction.
class LRScheduler {
 public:
  LRScheduler(torch::optim::Optimizer& optimizer, std::function<double(int64_t)> lambda);
  void step();
  int64_t last_epoch() const { return last_epoch_; }
  /// Jumps to `last_epoch` (checkpoint restore) and applies its learning rate.
  void set_last_epoch(int64_t last_epoch) {
    last_epoch_ = last_epoch;
    apply();
  }
  std::vector<double> get_last_lr() const;
  torch::optim::Optimizer& optimizer() { return optimizer_; }
  /// Lets an Accelerator that prepared this scheduler see whether it still exists.
  const Lifetime& lifetime() const { return lifetime_; }

 private:
  void apply();
  Lifetime lifetime_;
  torch::optim::Optimizer& optimizer_;
  std::function<double(int64_t)> lambda_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = 0;
};

struct SchedulerOptions {
  int64_t num_warmup_steps = 0;
  int64_t num_training_steps = 0;  ///< needed by every schedule that decays
  double num_cycles = -1;          ///< cosine: 0.5, cosine_with_restarts: 1 (when left at -1)
  double lr_end = 1e-7;            ///< polynomial
  double power = 1.0;              ///< polynomial
};

/// transformers' get_scheduler: "constant", "constant_with_warmup", "linear", "cosine",
/// "cosine_with_restarts", "polynomial". Unknown names are a ConfigError listing these.
LRScheduler get_scheduler(const std::string& name, torch::optim::Optimizer& optimizer, SchedulerOptions options = {});

/// HF's AcceleratedScheduler: steps only on sync micro-steps, not when fp16 skipped the optimizer step, and
/// num_processes times per step unless split_batches (the schedule is written for the unprepared loader).
class AcceleratedScheduler {
 public:
  AcceleratedScheduler(LRScheduler& scheduler, std::vector<AcceleratedOptimizer*> optimizers,
                       GradientState& gradient_state, bool step_with_optimizer, bool split_batches, int num_processes);
  void step();
  std::vector<double> get_last_lr() const { return scheduler_.get_last_lr(); }
  LRScheduler& scheduler() { return scheduler_; }
  /// The LRScheduler it steps still exists (step() on one that does not is a StateError; save_state skips it).
  bool alive() const { return !alive_.expired(); }

 private:
  LRScheduler& scheduler_;
  std::weak_ptr<const void> alive_;
  std::vector<AcceleratedOptimizer*> optimizers_;
  GradientState& gradient_state_;
  bool step_with_optimizer_, split_batches_;
  int num_processes_;
};

}  // namespace accelerate
