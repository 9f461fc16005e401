// Internal: an optimizer's state as safetensors tensors + JSON (hyper-parameters, step counts), for save_state.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include <accelerate/safetensors.hpp>

namespace torch::optim {
class Optimizer;
}

namespace accelerate::detail {

struct OptimizerState {
  safetensors::TensorMap tensors;  // "state.<param index>.<field>"
  nlohmann::json meta;             // optimizer kind, param groups with every hyper-parameter, scalar state
};

/// Adam, AdamW, SGD, Adagrad and RMSprop; anything else is a CheckpointError that says what to do.
OptimizerState optimizer_state(torch::optim::Optimizer& optimizer);

/// Replaces the optimizer's whole state (as torch's load_state_dict does). `where` names the files in errors.
void load_optimizer_state(torch::optim::Optimizer& optimizer, const safetensors::TensorMap& tensors,
                          const nlohmann::json& meta, const std::string& where);

/// Moves state tensors to their parameter's device (Adagrad makes its state at construction, before prepare moves
/// the model; HF's AcceleratedOptimizer moves the state the same way). Types it does not know are left as they are.
void move_optimizer_state(torch::optim::Optimizer& optimizer);

}  // namespace accelerate::detail
