#include "launcher/reaper.hpp"

#include <accelerate/error.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace accelerate::launcher {
namespace {

constexpr int32_t kDone = 0;  // the message that ends the reaper quietly; others are process groups

/// The reaper's life, after a fork of a process that may have threads: async-signal-safe calls only (read, kill,
/// close, setsid, sigaction, _exit), no allocation.
[[noreturn]] void reap_when_orphaned(int from_launcher) {
  ::setsid();
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
    ::sigaction(sig, &ignore, nullptr);
  // Holding the launcher's stdout or stderr would keep whoever reads them waiting for EOF.
  for (int fd = 0; fd < 1024; ++fd) {
    if (fd != from_launcher) ::close(fd);
  }
  static int32_t groups[4096];
  size_t count = 0;
  for (;;) {
    int32_t message = 0;
    const auto n = ::read(from_launcher, &message, sizeof message);
    if (n < 0 && errno == EINTR) continue;
    if (n == static_cast<ssize_t>(sizeof message) && message == kDone) ::_exit(0);
    if (n == static_cast<ssize_t>(sizeof message)) {
      groups[count++ % (sizeof groups / sizeof groups[0])] = message;
      continue;
    }
    break;  // EOF without kDone: the launcher died
  }
  const size_t kept = count < sizeof groups / sizeof groups[0] ? count : sizeof groups / sizeof groups[0];
  for (size_t i = 0; i < kept; ++i) ::kill(-groups[i], SIGKILL);
  ::_exit(0);
}

}  // namespace

Reaper::Reaper() {
  int fds[2];
  ACCELERATE_CHECK(::pipe2(fds, O_CLOEXEC) == 0, LaunchError, "pipe: ", std::strerror(errno));
  const pid_t middle = ::fork();
  ACCELERATE_CHECK(middle >= 0, LaunchError, "fork (the launcher's reaper): ", std::strerror(errno));
  if (middle == 0) {
    // Fork again and leave: the reaper is orphaned at once, before the launcher becomes a subreaper, so it is
    // re-parented away from the launcher.
    ::close(fds[1]);
    if (::fork() == 0) reap_when_orphaned(fds[0]);
    ::_exit(0);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  pipe_ = fds[1];
}

Reaper::~Reaper() {
  const int32_t done = kDone;
  [[maybe_unused]] auto n = ::write(pipe_, &done, sizeof done);
  ::close(pipe_);
}

void Reaper::watch(pid_t pgid) {
  const auto group = static_cast<int32_t>(pgid);
  [[maybe_unused]] auto n = ::write(pipe_, &group, sizeof group);
}

}  // namespace accelerate::launcher
