// Starts the workers, relays their output, and stops them all when one fails or the launcher is signalled.
#pragma once

#include <vector>

#include "launcher/launch_plan.hpp"
#include "launcher/reaper.hpp"

namespace accelerate::launcher {

struct SupervisorOptions {
  bool rank_prefix = true;  ///< "[rank N] " before each output line
  /// After SIGTERM or SIGUSR1 to the launcher (a preemption notice), forwarded to the workers: how long they get to
  /// save and exit before SIGKILL. Other stops (a failed worker, Ctrl-C) wait at most kStopGraceS.
  double grace_period_s = 25.0;
  int stderr_tail_lines = 20;  ///< lines of a failed rank's stderr repeated in the summary
  /// Told each worker's process group, to kill them if the launcher is SIGKILLed (none: only PDEATHSIG).
  Reaper* reaper = nullptr;
};

/// The longest a stop other than a preemption waits between SIGTERM and SIGKILL (seconds).
inline constexpr double kStopGraceS = 5.0;
/// How long a worker may survive SIGKILL (frozen, or in an uninterruptible wait) before the launcher stops waiting
/// for it, says so and exits (seconds).
inline constexpr double kUnkillableWaitS = 5.0;

struct SupervisionResult {
  int exit_code = 0;         ///< 0, kExitPreempted, the failed rank's code, or 128 + the launcher's signal
  bool interrupted = false;  ///< the launcher itself was signalled (Ctrl-C, SIGTERM): never restarted
};

/// Runs the workers to completion. Returns 0 when all exit 0; kExitPreempted when they exited with it (saved
/// after a preemption notice) and the others with it or 0; otherwise the first failed rank's exit code (128 +
/// signal number when it was killed), after stopping every other worker and printing which rank failed, how, and
/// its last stderr lines. SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1 to the launcher are forwarded to every worker;
/// workers die with the launcher even if it is killed (PR_SET_PDEATHSIG). May be called again for a restart.
SupervisionResult supervise(const std::vector<WorkerSpec>& workers, const SupervisorOptions& options);

}  // namespace accelerate::launcher
