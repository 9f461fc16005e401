// Activation checkpointing (PyTorch's torch.utils.checkpoint): a piece of the forward pass runs without keeping
// its activations, and backward runs it again to get them, trading one more forward of the piece for the memory
// of its activations. LibTorch's C++ API has no equivalent.
#pragma once

#include <concepts>
#include <functional>
#include <type_traits>
#include <vector>

#include <ATen/core/Tensor.h>

namespace accelerate {

/// inputs -> outputs, the piece of the forward pass to checkpoint.
using CheckpointFunction = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

struct ActivationCheckpointOptions {
  /// Give the recomputation the RNG states of the first run (the CPU generator and the default generator of each
  /// CUDA device among the inputs), so dropout draws the same masks (PyTorch's preserve_rng_state).
  bool preserve_rng_state = true;
};

/// Runs `fn(inputs)` without recording a graph and returns its outputs; their backward runs `fn` again on the same
/// inputs, with the first run's RNG states and autocast settings, and backpropagates through that (PyTorch's
/// checkpoint with use_reentrant=True). Gradients reach the inputs that require grad and every parameter `fn`
/// uses; the outputs require grad when an input does. Tensors `fn` makes inside are freed after the first run.
/// `fn` is called again during backward: what it captures must still be alive then, and it must compute the same
/// thing (no state changed between the two calls, e.g. BatchNorm statistics are updated twice, as in PyTorch).
/// As PyTorch's reentrant form: at least one input must require grad (ConfigError otherwise, where PyTorch only
/// warns that the parameters inside will get no gradient), and torch::autograd::grad() through it is not
/// supported, only backward(). Works under autocast, with the DDP Reducer (each parameter used by one checkpointed
/// piece per step) and with gradient accumulation. Without grad mode (evaluation) it just calls `fn`.
std::vector<at::Tensor> checkpoint_function(const CheckpointFunction& fn, const std::vector<at::Tensor>& inputs,
                                            ActivationCheckpointOptions options = {});

/// A module holder (a TORCH_MODULE type) or a pointer to a module with `forward(const at::Tensor&)`.
template <class M>
concept TensorModule = requires(std::remove_reference_t<M>& m, const at::Tensor& t) {
  { m->forward(t) } -> std::convertible_to<at::Tensor>;
};

/// checkpoint_function() for any callable: `auto out = accelerate::checkpoint(fn, {a, b});`.
template <class F>
requires(!TensorModule<F>) && std::is_invocable_r_v<std::vector<at::Tensor>, F&, const std::vector<at::Tensor>&> std::
                                  vector<at::Tensor> checkpoint(F&& fn, const std::vector<at::Tensor>& inputs,
                                                                ActivationCheckpointOptions options = {}) {
  return checkpoint_function(CheckpointFunction(std::forward<F>(fn)), inputs, options);
}

/// One tensor in, one out: `x = accelerate::checkpoint([&](const at::Tensor& t) { return block(t); }, x);`.
template <class F>
requires(!TensorModule<F>) && std::is_invocable_r_v<at::Tensor, F&, const at::Tensor&> at::Tensor
    checkpoint(F&& fn, const at::Tensor& input, ActivationCheckpointOptions options = {}) {
  return checkpoint_function(
      [f = std::forward<F>(fn)](const std::vector<at::Tensor>& in) mutable {
        return std::vector<at::Tensor>{f(in[0])};
      },
      {input}, options)[0];
}

/// A submodule's forward, checkpointed: `x = accelerate::checkpoint(block, x);`. The holder or pointer is copied
/// (a loop variable may end before backward); the module itself must outlive backward.
template <TensorModule M>
at::Tensor checkpoint(const M& module, const at::Tensor& input, ActivationCheckpointOptions options = {}) {
  return checkpoint_function(
      [m = module](const std::vector<at::Tensor>& in) mutable { return std::vector<at::Tensor>{m->forward(in[0])}; },
      {input}, options)[0];
}

}  // namespace accelerate
