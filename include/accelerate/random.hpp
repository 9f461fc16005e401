#pragma once

#include <cstdint>

namespace accelerate {

class ProcessState;

/// Seeds torch's CPU and CUDA generators and std::rand (HF's set_seed). With `device_specific`, each process
/// adds its index, so ranks draw different numbers.
void set_seed(uint64_t seed, bool device_specific = false, const ProcessState* state = nullptr);

}  // namespace accelerate
