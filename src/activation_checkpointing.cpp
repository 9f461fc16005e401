#include <accelerate/activation_checkpointing.hpp>

#include <accelerate/error.hpp>
#include <accelerate/precision.hpp>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <mutex>
#include <optional>

namespace accelerate {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// A generator's state, taken at the first run and given back around the recomputation.
struct RngSnapshot {
  at::Generator generator;
  at::Tensor state;
};

struct AutocastSetting {
  c10::DeviceType device;
  bool enabled;
  c10::ScalarType dtype;
};

/// What the backward needs besides the inputs: kept in the autograd context as a capsule.
struct CheckpointState : torch::CustomClassHolder {
  CheckpointFunction fn;
  bool preserve_rng_state = true;
  std::vector<RngSnapshot> rng;
  std::vector<AutocastSetting> autocast;
};

std::vector<c10::DeviceType> autocast_devices() {
  std::vector<c10::DeviceType> devices{c10::kCPU};
  if (at::globalContext().hasCUDA()) devices.push_back(c10::kCUDA);
  return devices;
}

std::vector<RngSnapshot> snapshot_rng(const std::vector<at::Tensor>& inputs) {
  std::vector<RngSnapshot> out;
  auto take = [&](at::Generator g) {
    for (const auto& s : out) {
      if (s.generator == g) return;
    }
    std::lock_guard<std::mutex> lock(g.mutex());
    out.push_back({g, g.get_state()});
  };
  take(at::globalContext().defaultGenerator(c10::Device(c10::kCPU)));
  for (const auto& t : inputs) {
    if (t.defined() && t.is_cuda()) take(at::globalContext().defaultGenerator(t.device()));
  }
  return out;
}

void restore_rng(std::vector<RngSnapshot>& snapshots) {
  for (auto& s : snapshots) {
    std::lock_guard<std::mutex> lock(s.generator.mutex());
    s.generator.set_state(s.state);
  }
}

/// While alive, the generators hold the first run's states; the caller's come back at its end, also when the
/// recomputation throws.
class RngFork {
 public:
  RngFork(std::vector<RngSnapshot>& first, const std::vector<at::Tensor>& inputs) : caller_(snapshot_rng(inputs)) {
    restore_rng(first);
  }
  ~RngFork() { restore_rng(caller_); }
  RngFork(const RngFork&) = delete;
  RngFork& operator=(const RngFork&) = delete;

 private:
  std::vector<RngSnapshot> caller_;
};

struct CheckpointNode : torch::autograd::Function<CheckpointNode> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<CheckpointState> state, at::TensorList inputs) {
    std::vector<at::Tensor> in(inputs.begin(), inputs.end());
    if (state->preserve_rng_state) state->rng = snapshot_rng(in);
    for (auto device : autocast_devices()) {
      state->autocast.push_back(
          {device, at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)});
    }
    ctx->save_for_backward(in);
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return state->fn(in);  // under no_grad: Function::apply runs forward with grad mode off
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto state = c10::static_intrusive_pointer_cast<CheckpointState>(ctx->saved_data["state"].toCapsule());
    const auto saved = ctx->get_saved_variables();
    std::vector<at::Tensor> inputs;
    inputs.reserve(saved.size());
    for (size_t i = 0; i < saved.size(); ++i) {
      inputs.push_back(saved[i].detach().requires_grad_(saved[i].requires_grad()));
    }
    variable_list outputs;
    {
      // The recomputation draws the first run's random numbers; the caller's generators continue afterwards
      // where they were.
      std::optional<RngFork> rng;
      if (state->preserve_rng_state) rng.emplace(state->rng, inputs);
      std::vector<std::unique_ptr<AutocastGuard>> autocast;
      for (const auto& a : state->autocast)
        autocast.push_back(std::make_unique<AutocastGuard>(a.device, a.dtype, a.enabled));
      at::AutoGradMode grad(true);
      outputs = state->fn(inputs);
    }
    variable_list with_grad, grads;
    for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        with_grad.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!with_grad.empty()) torch::autograd::backward(with_grad, grads);
    variable_list result{at::Tensor()};  // for the state argument
    for (const auto& in : inputs) result.push_back(in.requires_grad() ? in.grad() : at::Tensor());
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpoint_function(const CheckpointFunction& fn, const std::vector<at::Tensor>& inputs,
                                            ActivationCheckpointOptions options) {
  ACCELERATE_CHECK(fn, ConfigError, "checkpoint: no function given.");
  if (!at::GradMode::is_enabled()) return fn(inputs);  // evaluation: nothing to recompute
  const bool any_grad =
      std::any_of(inputs.begin(), inputs.end(), [](const at::Tensor& t) { return t.defined() && t.requires_grad(); });
  ACCELERATE_CHECK(any_grad, ConfigError,
                   "checkpoint: no input requires grad, so backward would never reach the function and its "
                   "parameters would get no gradient; checkpoint a piece whose input comes from a layer with "
                   "parameters (e.g. after the embedding), as PyTorch's use_reentrant=True requires.");
  auto state = c10::make_intrusive<CheckpointState>();
  state->fn = fn;
  state->preserve_rng_state = options.preserve_rng_state;
  return CheckpointNode::apply(state, at::TensorList(inputs));
}

}  // namespace accelerate
