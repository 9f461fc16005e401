#pragma once

#include <cstdint>

namespace accelerate {

class ProcessState;

/// Seeds torch's CPU and CUDA generators and std::rand (HF's set_seed): the same numbers on every process.
void set_seed(uint64_t seed);
/// The same; with `device_specific`, each process adds its index (state.process_index()), so ranks draw
/// different numbers (HF's set_seed(seed, device_specific=True)). The state comes first, as in the collectives.
void set_seed(const ProcessState& state, uint64_t seed, bool device_specific = false);

}  // namespace accelerate
