// Checkpointable: a user object saved with save_state (HF's register_for_checkpointing).
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include <accelerate/lifetime.hpp>

namespace accelerate {

/// A user object saved with every save_state as custom_checkpoint_<i>.safetensors: its state as tensors plus a
/// JSON text, restored by load_state. An object registered with Accelerator::register_for_checkpointing and
/// destroyed afterwards is left out of later checkpoints (they number the objects that still exist).
class Checkpointable {
 public:
  virtual ~Checkpointable() = default;
  virtual std::map<std::string, at::Tensor> state_tensors() const { return {}; }
  virtual std::string state_json() const { return "{}"; }
  virtual void load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& json) = 0;
  /// Lets the Accelerator see whether this object still exists.
  const Lifetime& lifetime() const { return lifetime_; }

 private:
  Lifetime lifetime_;
};

}  // namespace accelerate
