// The Accelerator's agreement flags: HF's set_trigger/check_trigger flag, and check_preemption's cadence.
#pragma once

#include <chrono>

namespace accelerate::detail {

struct Triggers {
  /// This process's set_trigger() since the last check_trigger().
  bool raised = false;
  /// check_preemption's cadence: every rank exchanges its flag on the same calls only (every `interval`-th), the
  /// interval being chosen by rank 0 from the time between calls and sent with each exchange.
  int countdown = 1;
  int interval = 1;
  std::chrono::steady_clock::time_point last{};
};

}  // namespace accelerate::detail
