// Memory tools (HF's accelerate.utils.memory): what this process holds, its peak, and giving cached memory back.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace torch::optim {
class Optimizer;
}

namespace accelerate {

/// Bytes of the optimizer's state tensors on this process (AdamW's exp_avg and exp_avg_sq, SGD's momentum
/// buffers, ...), for Adam, AdamW, SGD, Adagrad and RMSprop (ConfigError for other types). 0 before the first step.
int64_t optimizer_state_bytes(torch::optim::Optimizer& optimizer);

/// Bytes of the gradients `parameters` hold now (undefined gradients count 0; after zero_grad they are undefined).
/// Gradients that share storage (views into one buffer) count that storage once.
int64_t gradient_bytes(const std::vector<at::Tensor>& parameters);

/// The same over `parameters` and the parameters of `optimizer`: under ZeRO stage 2 the averaged gradients live
/// in the optimizer's pieces (this process's shard) while the model's parameters hold none after backward; at
/// stage 1 the pieces' gradients are views into the parameters' and count once.
int64_t gradient_bytes(const std::vector<at::Tensor>& parameters, torch::optim::Optimizer& optimizer);

/// Bytes of storage that `parameters` hold now, each storage once. At ZeRO stage 3 a unit's parameters hold
/// none between its uses (their storage is freed; see sharding_unit.hpp).
int64_t parameter_bytes(const std::vector<at::Tensor>& parameters);

/// The same over `parameters` and the parameters of `optimizer`: at stage 3 the optimizer steps this process's
/// shards of the units' parameters, which count here; at stages 1 and 2 its pieces are views into the parameters
/// and count once.
int64_t parameter_bytes(const std::vector<at::Tensor>& parameters, torch::optim::Optimizer& optimizer);

/// This process's peak memory: on the CPU the peak resident set size (getrusage, so everything the process ever
/// touched, LibTorch included); on CUDA the caching allocator's peak of allocated bytes on `device`.
int64_t peak_memory_bytes(c10::Device device);

/// Gives the accelerator's cached, unused blocks back to the driver (HF's clear_device_cache); nothing on the CPU.
void clear_device_cache(c10::Device device);

}  // namespace accelerate
