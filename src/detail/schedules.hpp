// Internal: the multiplier each of transformers' schedules applies at a step (tests check it against transformers).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <accelerate/scheduler.hpp>

namespace accelerate::detail {

/// The multiplier schedule `name` applies at `step` (transformers' lr_lambda); ConfigError for unknown names.
std::function<double(int64_t)> schedule_lambda(const std::string& name, const SchedulerOptions& options,
                                               double initial_lr);

}  // namespace accelerate::detail
