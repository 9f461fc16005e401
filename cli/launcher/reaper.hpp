// The reaper: a small process that outlives a SIGKILLed launcher just long enough to end what the launcher started.
// Workers die with the launcher by PR_SET_PDEATHSIG, but their own children (a wrapper script's `sleep`, a shell
// tool) do not; torchrun leaves them running. Each worker leads a process group that its plain children share, so
// the reaper, told each worker's group as it starts, sends SIGKILL to those groups when the launcher is gone.
#pragma once

#include <sys/types.h>

namespace accelerate::launcher {

class Reaper {
 public:
  /// Starts the reaper process (detached: its parent is not the launcher, so the launcher's leftover checks and
  /// waitpid never see it; its own session, so a signal to the launcher's group does not reach it). Throws
  /// LaunchError when it cannot be started.
  Reaper();
  /// Tells the reaper that the launcher is ending normally: it exits without killing anything.
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  /// The process group `pgid` (a worker's) is to be killed if the launcher dies.
  void watch(pid_t pgid);

 private:
  int pipe_ = -1;  // write end; the reaper sees EOF when the launcher is gone
};

}  // namespace accelerate::launcher
