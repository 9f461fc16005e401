// Starts the workers, relays their output, and stops them all when one fails or the launcher is signalled.
#pragma once

#include <vector>

#include "launcher/launch_plan.hpp"

namespace accelerate::launcher {

struct SupervisorOptions {
  bool rank_prefix = true;      ///< "[rank N] " before each output line
  double grace_period_s = 5.0;  ///< between SIGTERM and SIGKILL
  int stderr_tail_lines = 20;   ///< lines of a failed rank's stderr repeated in the summary
};

struct SupervisionResult {
  int exit_code = 0;         ///< 0, the failed rank's code, or 128 + the launcher's signal
  bool interrupted = false;  ///< the launcher itself was signalled (Ctrl-C, SIGTERM): never restarted
};

/// Runs the workers to completion. Returns 0 when all exit 0; otherwise the first failed rank's exit code
/// (128 + signal number when it was killed), after stopping every other worker and printing which rank
/// failed, how, and its last stderr lines. SIGINT/SIGTERM/SIGHUP to the launcher are forwarded to every
/// worker; workers die with the launcher even if it is killed (PR_SET_PDEATHSIG). May be called again for a
/// restart.
SupervisionResult supervise(const std::vector<WorkerSpec>& workers, const SupervisorOptions& options);

}  // namespace accelerate::launcher
