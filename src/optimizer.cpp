#include <accelerate/optimizer.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <map>

#include "detail/trace_range.hpp"
#include "detail/zero_optimizer.hpp"

namespace accelerate {

GradScaler::GradScaler(GradScalerOptions options) : options_(options) {
  ACCELERATE_CHECK(options_.growth_factor > 1.0, ConfigError, "GradScaler: growth_factor must be > 1, got ",
                   options_.growth_factor, ".");
  ACCELERATE_CHECK(options_.backoff_factor > 0.0 && options_.backoff_factor < 1.0, ConfigError,
                   "GradScaler: backoff_factor must be in (0, 1), got ", options_.backoff_factor, ".");
  ACCELERATE_CHECK(options_.growth_interval >= 1, ConfigError, "GradScaler: growth_interval must be >= 1.");
}

at::Tensor GradScaler::scale(const at::Tensor& loss) {
  if (!options_.enabled) return loss;
  if (!scale_.defined()) {
    // Lazily on the loss's device, as torch does.
    scale_ = at::full({}, options_.init_scale, at::TensorOptions().dtype(at::kFloat).device(loss.device()));
    growth_tracker_ = at::zeros({}, at::TensorOptions().dtype(at::kInt).device(loss.device()));
  } else if (scale_.device() != loss.device()) {
    // A scale restored by load_state (on the CPU) keeps its value: moved, never reset to init_scale.
    scale_ = scale_.to(loss.device());
    growth_tracker_ = growth_tracker_.to(loss.device());
  }
  // In fp32, as torch (its [1]-shaped fp32 scale promotes the product): an fp16 product would overflow at the
  // default scale of 65536 and skip every step.
  return (at::isReducedFloatingType(loss.scalar_type()) ? loss.to(at::kFloat) : loss) * scale_;
}

void GradScaler::unscale_(torch::optim::Optimizer& optimizer) {
  if (!options_.enabled || !scale_.defined()) return;
  auto& state = per_optimizer_[&optimizer];
  ACCELERATE_CHECK(!state.unscaled, StateError,
                   "unscale_() was already called on this optimizer since the last update(): clip its gradients once "
                   "per step.");
  const auto inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
  auto found_inf = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(scale_.device()));
  // The fused kernel wants one device and dtype per call.
  std::map<std::pair<std::string, at::ScalarType>, std::vector<at::Tensor>> groups;
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      ACCELERATE_CHECK(p.grad().scalar_type() != at::kHalf, StateError,
                       "Attempting to unscale FP16 gradients: keep the parameters in fp32 and let autocast cast.");
      groups[{p.grad().device().str(), p.grad().scalar_type()}].push_back(p.mutable_grad());
    }
  }
  for (auto& [key, grads] : groups) {
    auto found = at::zeros({}, found_inf.options().device(grads[0].device()));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_scale.to(grads[0].device()));
    found_inf.add_(found.to(found_inf.device()));
  }
  if (auto it = found_inf_reductions_.find(&optimizer); it != found_inf_reductions_.end()) it->second(found_inf);
  state.found_inf = found_inf;
  state.unscaled = true;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer) {
  if (!options_.enabled || !scale_.defined()) {
    optimizer.step();
    return true;
  }
  if (!per_optimizer_[&optimizer].unscaled) unscale_(optimizer);
  const bool finite = per_optimizer_[&optimizer].found_inf.item<float>() == 0.0f;
  if (finite) optimizer.step();
  return finite;
}

void GradScaler::update() {
  if (!options_.enabled || !scale_.defined()) return;
  // As torch: an inf/NaN in any optimizer unscaled since the last update backs the scale off.
  auto found = at::zeros({}, scale_.options());
  for (const auto& [optimizer, state] : per_optimizer_) {
    if (state.found_inf.defined()) found.add_(state.found_inf);
  }
  at::_amp_update_scale_(scale_, growth_tracker_, found, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
  per_optimizer_.clear();
}

void GradScaler::load_state(double scale, int64_t growth_tracker) {
  scale_ =
      at::full({}, scale, at::TensorOptions().dtype(at::kFloat).device(scale_.defined() ? scale_.device() : at::kCPU));
  growth_tracker_ = at::full({}, growth_tracker, at::TensorOptions().dtype(at::kInt).device(scale_.device()));
}

void GradScaler::set_found_inf_reduction(const torch::optim::Optimizer& optimizer,
                                         std::function<void(at::Tensor&)> reduce) {
  found_inf_reductions_[&optimizer] = std::move(reduce);
}

double GradScaler::get_scale() const { return scale_.defined() ? scale_.item<double>() : options_.init_scale; }
int64_t GradScaler::growth_tracker() const { return growth_tracker_.defined() ? growth_tracker_.item<int64_t>() : 0; }

AcceleratedOptimizer::AcceleratedOptimizer(torch::optim::Optimizer& optimizer, GradientState& gradient_state,
                                           GradScaler* scaler, OptimizerSharding* sharded)
    : optimizer_(optimizer), gradient_state_(gradient_state), scaler_(scaler), sharded_(sharded) {
  if (sharded_ && scaler_) {
    scaler_->set_found_inf_reduction(optimizer_, [sharded](at::Tensor& found) { sharded->reduce_found_inf(found); });
  }
}

void AcceleratedOptimizer::step() {
  if (!gradient_state_.sync_gradients()) return;
  detail::TraceRange range("accelerate::optimizer_step");
  if (sharded_) sharded_->bind_gradients();
  if (scaler_) {
    skipped_ = !scaler_->step(optimizer_);
    scaler_->update();
  } else {
    optimizer_.step();
    skipped_ = false;
  }
  // Every rank skipped or none did (found_inf is reduced): the all-gather is matched either way.
  if (sharded_ && !skipped_) sharded_->gather_parameters();
}

void AcceleratedOptimizer::unscale_gradients() {
  if (!scaler_) return;
  if (sharded_) sharded_->bind_gradients();
  scaler_->unscale_(optimizer_);
}

void AcceleratedOptimizer::zero_grad(bool set_to_none) {
  if (!gradient_state_.sync_gradients()) return;
  if (sharded_) {
    sharded_->zero_grad(set_to_none);
  } else {
    optimizer_.zero_grad(set_to_none);
  }
}

}  // namespace accelerate
