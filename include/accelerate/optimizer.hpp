// AcceleratedOptimizer (steps only on sync micro-steps, runs the GradScaler under fp16) and GradScaler
// (torch.amp.GradScaler's algorithm on ATen's _amp_* kernels).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <accelerate/gradient_state.hpp>

namespace accelerate {

/// A ZeRO stage's part in an optimizer step: the optimizer's parameter groups hold this process's pieces of the
/// parameters, and the step around them binds the gradient pieces, reduces fp16's overflow flag over every process
/// and all-gathers the updated parameters. Made by Accelerator::prepare (the stages are internal).
class OptimizerSharding {
 public:
  virtual ~OptimizerSharding() = default;
  /// Points each piece's gradient at its part of the gradient. Before unscaling, clipping or stepping.
  virtual void bind_gradients() = 0;
  /// All-gathers the updated parameters after a step.
  virtual void gather_parameters() = 0;
  virtual void zero_grad(bool set_to_none) = 0;
  /// GradScaler's found_inf over every process (max), so an inf on any shard skips the step everywhere.
  virtual void reduce_found_inf(at::Tensor& found_inf) = 0;
};

/// HF's GradScalerKwargs (torch's defaults).
struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});
  /// loss * scale, in fp32 whatever the loss's dtype (as torch's GradScaler: 65536 is inf in fp16). The scale
  /// lives on the loss's device.
  at::Tensor scale(const at::Tensor& loss);
  /// Divides `optimizer`'s gradients by the scale in place and records whether any is inf/NaN. Once per optimizer
  /// and step: the state is kept per optimizer, as torch's (a GAN clips and steps two optimizers per update).
  void unscale_(torch::optim::Optimizer& optimizer);
  /// Unscales if needed, then steps unless a gradient was inf/NaN. Returns whether it stepped.
  bool step(torch::optim::Optimizer& optimizer);
  /// Backs the scale off after inf/NaN, grows it after growth_interval clean steps.
  void update();
  double get_scale() const;
  /// Restores the scale and growth tracker (checkpoints).
  void load_state(double scale, int64_t growth_tracker);
  int64_t growth_tracker() const;
  bool is_enabled() const { return options_.enabled; }
  /// For an optimizer that holds only a shard of the gradients (ZeRO): `reduce` combines the found_inf flags of
  /// all processes in unscale_, so an inf on any shard skips the step on every rank (as torch's
  /// ShardedGradScaler). The Accelerator sets it when it prepares a sharded optimizer.
  void set_found_inf_reduction(const torch::optim::Optimizer& optimizer, std::function<void(at::Tensor&)> reduce);

 private:
  struct PerOptimizer {
    bool unscaled = false;
    at::Tensor found_inf;  // on the scale's device; defined once unscaled
  };
  GradScalerOptions options_;
  std::map<const torch::optim::Optimizer*, std::function<void(at::Tensor&)>> found_inf_reductions_;
  at::Tensor scale_, growth_tracker_;
  std::map<const torch::optim::Optimizer*, PerOptimizer> per_optimizer_;  // cleared by update()
};

/// The optimizer a prepared loop steps: step() and zero_grad() do nothing on accumulation micro-steps
/// (sync_gradients false), and under fp16 step() goes through the GradScaler. Under ZeRO stage 1 or 2 the
/// wrapped optimizer's parameter groups hold this process's pieces of the parameters (1-D views into them), and
/// step() all-gathers the updated parameters.
class AcceleratedOptimizer {
 public:
  /// `sharded`: the ZeRO sharding of `optimizer`, or nullptr (made by Accelerator::prepare).
  AcceleratedOptimizer(torch::optim::Optimizer& optimizer, GradientState& gradient_state, GradScaler* scaler,
                       OptimizerSharding* sharded = nullptr);
  void step();
  void zero_grad(bool set_to_none = true);
  /// The last step() was skipped because the fp16 gradients overflowed.
  bool step_was_skipped() const { return skipped_; }
  torch::optim::Optimizer& optimizer() { return optimizer_; }
  std::vector<torch::optim::OptimizerParamGroup>& param_groups() { return optimizer_.param_groups(); }
  GradScaler* scaler() { return scaler_; }
  /// Divides the gradients by the fp16 scale (once per step; nothing without fp16).
  void unscale_gradients();

 private:
  torch::optim::Optimizer& optimizer_;
  GradientState& gradient_state_;
  GradScaler* scaler_;
  OptimizerSharding* sharded_;
  bool skipped_ = false;
};

}  // namespace accelerate
