// Mixed precision: the policy chosen once (no, fp16, bf16) and the RAII autocast guard.
#pragma once

#include <accelerate/guard.hpp>

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace accelerate {

enum class MixedPrecision { No, Fp16, Bf16 };

/// "no", "fp16", "bf16"; anything else is a ConfigError listing the choices ("fp8" is recognised and refused).
MixedPrecision parse_mixed_precision(const std::string& value);
std::string to_string(MixedPrecision precision);

/// RAII: autocast to `dtype` on `device`'s type while alive (Python's `with torch.autocast(...)`). Restores the
/// previous state and clears the cast cache when the outermost guard ends, so updated weights are re-cast.
/// Thread-local, as torch's autocast. Leave it before backward().
class [[nodiscard]] AutocastGuard : Guard {
 public:
  AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled = true);
  ~AutocastGuard();

 private:
  c10::DeviceType device_;
  bool previous_enabled_, previous_cache_;
  c10::ScalarType previous_dtype_;
};

}  // namespace accelerate
