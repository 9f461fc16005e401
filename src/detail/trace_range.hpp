// Internal: the library's named ranges in a profiler trace (profiler.hpp).
#pragma once

#include <string_view>

#include <ATen/record_function.h>

namespace accelerate::detail {

/// A range named `name` (a string literal: "accelerate::backward") in the trace while alive, recorded only while
/// a profiler runs: otherwise its cost is RecordFunction's check of the thread's callbacks.
class [[nodiscard]] TraceRange {
 public:
  explicit TraceRange(std::string_view name) : guard_(at::RecordScope::USER_SCOPE) {
    if (guard_.isActive()) guard_.before(name);
  }
  TraceRange(const TraceRange&) = delete;
  TraceRange& operator=(const TraceRange&) = delete;

 private:
  at::RecordFunction guard_;
};

}  // namespace accelerate::detail
