#include <accelerate/precision.hpp>

#include <accelerate/error.hpp>

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>

namespace accelerate {

AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled)
    : device_(device),
      previous_enabled_(at::autocast::is_autocast_enabled(device)),
      previous_cache_(at::autocast::is_autocast_cache_enabled()),
      previous_dtype_(at::autocast::get_autocast_dtype(device)) {
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::increment_nesting();
  range_ = std::make_unique<at::RecordFunction>(at::RecordScope::USER_SCOPE);
  if (range_->isActive()) range_->before(std::string_view("accelerate::forward"));
}

AutocastGuard::~AutocastGuard() {
  // The cast cache keys fp32 weights by identity; without clearing it the next step would reuse stale casts.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, previous_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
  at::autocast::set_autocast_cache_enabled(previous_cache_);
}

}  // namespace accelerate
