// libFuzzer target: the safetensors parser must reject any malformed input with a CheckpointError, never crash,
// read out of bounds or overflow. Built and run by scripts/fuzz-safetensors.sh under ASan and UBSan.
#include <accelerate/error.hpp>

#include <cstddef>
#include <cstdint>

#include "detail/safetensors_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto header = accelerate::detail::safetensors::parse(data, size, "<fuzz input>");
    // Whatever it accepts must be addressable: every tensor lies inside the input.
    for (const auto& e : header.entries) {
      if (header.data_start + e.end > size) __builtin_trap();
    }
  } catch (const accelerate::Error&) {
  }
  return 0;
}
