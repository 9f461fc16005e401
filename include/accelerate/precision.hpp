// Mixed precision: the policy chosen once (no, fp16, bf16) and the RAII autocast guard.
#pragma once

#include <accelerate/guard.hpp>
#include <accelerate/mixed_precision.hpp>

#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace at {
struct RecordFunction;
}

namespace accelerate {

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
  std::unique_ptr<at::RecordFunction> range_;  // "accelerate::forward" while a profiler runs
};

}  // namespace accelerate
