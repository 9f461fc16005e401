#include <accelerate/random.hpp>

#include <accelerate/process_state.hpp>

#include <cstdlib>
#include <torch/cuda.h>
#include <torch/utils.h>

namespace accelerate {

void set_seed(const ProcessState& state, uint64_t seed, bool device_specific) {
  set_seed(device_specific ? seed + static_cast<uint64_t>(state.process_index()) : seed);
}

void set_seed(uint64_t seed) {
  torch::manual_seed(seed);  // CPU, and every CUDA device when there is one
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
  std::srand(static_cast<unsigned>(seed));
}

}  // namespace accelerate
