// Process supervision for `launch`: fork/exec, output relay, failure detection, and a bounded shutdown.
// Invariants: every worker is its own process-group leader (so a kill reaches its children too), and dies
// with the launcher (PR_SET_PDEATHSIG); the launcher never waits longer than the grace period after SIGTERM.
// The launcher is a child subreaper: a worker's orphaned descendants become its children, and none of them
// outlives it (they get SIGTERM, then SIGKILL after the grace period, once the workers are gone).
#include "launcher/supervisor.hpp"

#include "launcher/blame.hpp"
#include "launcher/descendants.hpp"

#include <accelerate/error.hpp>
#include <accelerate/preemption.hpp>
#include <accelerate/settings.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace accelerate::launcher {
namespace {

using Clock = std::chrono::steady_clock;

int g_signal_pipe[2] = {-1, -1};
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  g_signal = sig;
  const char c = 1;
  [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &c, 1);
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + signal_name(WTERMSIG(status)) + ")";
  }
  return "ended with status " + std::to_string(status);
}

/// Saved after a preemption notice and exited with the code that says so: not a failure.
bool preempted(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == kExitPreempted; }

/// Returned from main (or exit(0)): the program's work is done.
bool finished(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

bool failed(int status) { return !finished(status) && !preempted(status); }

/// SIGTERM and SIGUSR1 are how schedulers announce a preemption: the workers get the whole grace period to save.
bool is_preemption_notice(int sig) { return sig == SIGTERM || sig == SIGUSR1; }

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

int exit_code_for(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

struct Stream {
  int fd = -1;
  FILE* sink = nullptr;
  std::string partial;
};

struct Worker {
  const WorkerSpec* spec = nullptr;
  pid_t pid = -1;
  Stream out, err;
  bool running = false;
  int status = 0;
  bool stopped_by_us = false;
  int failure_order = -1;        // 0 for the first failure seen, ...
  bool frozen = false;           // stopped (SIGSTOP, a debugger) when the first failure came
  bool unkillable = false;       // still alive kUnkillableWaitS after SIGKILL: left behind
  std::string error_file;        // ACCELERATE_CPP_ERROR_FILE of this worker
  std::deque<std::string> tail;  // last stderr lines
};

class Supervisor {
 public:
  Supervisor(const std::vector<WorkerSpec>& specs, const SupervisorOptions& options)
      // Prefixed when more than one process writes, on this machine or another.
      : options_(options), prefix_(options.rank_prefix && std::stoi(specs.at(0).env.at(env_var::kWorldSize)) > 1) {
    workers_.resize(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) workers_[i].spec = &specs[i];
  }

  int run() {
    install_signal_handlers();
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    ErrorFiles files;
    for (auto& w : workers_) w.error_file = files.path_for(w.spec->rank);
    try {
      for (auto& w : workers_) spawn(w);
    } catch (...) {
      stop_all(SIGKILL);
      while (any_running()) reap(/*block=*/true);
      throw;
    }
    loop();
    return finish();
  }

  /// The launcher itself was signalled (and stopped the workers).
  bool interrupted() const { return launcher_signal_ != 0; }

 private:
  void install_signal_handlers() {
    if (g_signal_pipe[0] >= 0) return;  // a restart: installed by the first run
    ACCELERATE_CHECK(::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) == 0, LaunchError, "pipe: ", std::strerror(errno));
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  }

  static std::vector<std::string> environment_for(const WorkerSpec& spec, const std::string& error_file) {
    std::map<std::string, std::string> env;
    for (char** p = environ; p && *p; ++p) {
      std::string entry(*p);
      auto eq = entry.find('=');
      if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    for (const auto& [k, v] : spec.env) env[k] = v;
    if (!error_file.empty()) env[env_var::kErrorFile] = error_file;
    std::vector<std::string> out;
    for (const auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
  }

  void spawn(Worker& w) {
    int out[2], err[2], status[2];
    ACCELERATE_CHECK(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0 && ::pipe2(status, O_CLOEXEC) == 0,
                     LaunchError, "pipe: ", std::strerror(errno));
    auto env_strings = environment_for(*w.spec, w.error_file);
    std::vector<char*> argv, envp;
    for (const auto& a : w.spec->argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    ACCELERATE_CHECK(pid >= 0, LaunchError, "fork failed for rank ", w.spec->rank, ": ", std::strerror(errno));
    if (pid == 0) {  // child: only async-signal-safe calls until exec
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the launcher died before prctl took effect
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      ::execve(argv[0], argv.data(), envp.data());
      const int e = errno;
      [[maybe_unused]] auto n = ::write(status[1], &e, sizeof e);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent: no window where a kill misses the group
    if (options_.reaper) options_.reaper->watch(pid);
    ::close(out[1]);
    ::close(err[1]);
    ::close(status[1]);
    w.pid = pid;
    w.running = true;
    w.out = {out[0], stdout, {}};
    w.err = {err[0], stderr, {}};
    int exec_errno = 0;
    const auto n = ::read(status[0], &exec_errno, sizeof exec_errno);  // EOF = exec succeeded (CLOEXEC)
    ::close(status[0]);
    ACCELERATE_CHECK(n <= 0, LaunchError, "cannot execute '", w.spec->argv[0], "' for rank ", w.spec->rank, ": ",
                     std::strerror(exec_errno), ".");
  }

  bool any_running() const {
    for (const auto& w : workers_) {
      if (w.running) return true;
    }
    return false;
  }

  bool any_stream_open() const {
    for (const auto& w : workers_) {
      if (w.out.fd >= 0 || w.err.fd >= 0) return true;
    }
    return false;
  }

  void emit(Worker& w, Stream& s, const std::string& line) {
    if (prefix_) std::fprintf(s.sink, "[rank%d]: ", w.spec->rank);
    std::fwrite(line.data(), 1, line.size(), s.sink);
    std::fputc('\n', s.sink);
    if (&s == &w.err) {
      w.tail.push_back(line);
      if (static_cast<int>(w.tail.size()) > options_.stderr_tail_lines) w.tail.pop_front();
    }
  }

  void drain(Worker& w, Stream& s) {
    char buffer[65536];
    const auto n = ::read(s.fd, buffer, sizeof buffer);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) return;
      if (!s.partial.empty()) emit(w, s, s.partial);
      s.partial.clear();
      ::close(s.fd);
      s.fd = -1;
      return;
    }
    s.partial.append(buffer, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = s.partial.find('\n', start)) != std::string::npos) {
      emit(w, s, s.partial.substr(start, nl - start));
      start = nl + 1;
    }
    s.partial.erase(0, start);
    std::fflush(s.sink);
  }

  void stop_all(int sig) {
    for (auto& w : workers_) {
      if (w.running) {
        ::kill(-w.pid, sig);
        w.stopped_by_us = true;
      }
    }
  }

  void begin_stop(int sig, Clock::duration grace) {
    if (stopping_) return;
    stopping_ = true;
    stop_all(sig);
    kill_deadline_ = Clock::now() + grace;
  }

  void reap(bool block) {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
      for (size_t i = 0; i < workers_.size(); ++i) {
        auto& w = workers_[i];
        if (w.pid != pid) continue;
        w.running = false;
        w.status = status;
        if (failed(status) && !w.stopped_by_us) {
          w.failure_order = failures_++;
          if (first_failure_ < 0) {
            first_failure_ = static_cast<int>(i);
            for (auto& other : workers_) other.frozen = other.running && is_stopped(other.pid);  // before our stop
            settle_until_ = Clock::now() + kSettle;
          }
        }
        // A preempted worker saved at the step every process agreed on: the others are saving too; they get the
        // grace period to finish before they are stopped.
        if (preempted(status) && preempted_deadline_ == Clock::time_point{}) {
          preempted_deadline_ = Clock::now() + seconds(options_.grace_period_s);
        }
      }
      if (block) return;
    }
  }

  /// SIGTERM -> SIGKILL for every stop but a preemption notice's.
  Clock::duration stop_grace() const { return seconds(std::min(options_.grace_period_s, kStopGraceS)); }

  /// Every process left from the workers: their process groups, and orphans re-parented to us (subreaper).
  void signal_leftovers(int sig) {
    for (const auto& w : workers_) ::kill(-w.pid, sig);
    for (pid_t child : children_of(::getpid())) ::kill(child, sig);
  }

  bool leftovers_alive() {
    reap(/*block=*/false);  // zombies of re-parented orphans do not count
    for (const auto& w : workers_) {
      if (::kill(-w.pid, 0) == 0) return true;
    }
    return !children_of(::getpid()).empty();
  }

  void loop() {
    Clock::time_point all_exited_at{}, leftovers_deadline{};
    for (;;) {
      std::vector<pollfd> fds{{g_signal_pipe[0], POLLIN, 0}};
      std::vector<std::pair<Worker*, Stream*>> owners{{nullptr, nullptr}};
      for (auto& w : workers_) {
        for (Stream* s : {&w.out, &w.err}) {
          if (s->fd >= 0) {
            fds.push_back({s->fd, POLLIN, 0});
            owners.emplace_back(&w, s);
          }
        }
      }
      const int ready = ::poll(fds.data(), fds.size(), 50);
      if (ready > 0) {
        for (size_t i = 1; i < fds.size(); ++i) {
          if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) drain(*owners[i].first, *owners[i].second);
        }
      }
      if (fds[0].revents & POLLIN) {
        char sink[64];
        while (::read(g_signal_pipe[0], sink, sizeof sink) > 0) {
        }
        const int sig = g_signal;
        if (!stopping_) {
          launcher_signal_ = sig;
          signalled_at_ = Clock::now();
          begin_stop(sig, is_preemption_notice(sig) ? seconds(options_.grace_period_s) : stop_grace());
        } else if (!(is_preemption_notice(sig) && is_preemption_notice(launcher_signal_) &&
                     Clock::now() - signalled_at_ < std::chrono::seconds(10))) {
          stop_all(SIGKILL);  // a second Ctrl-C: no more waiting
        }  // else the same notice again (SLURM signals every process of a step): the workers are saving
      }
      reap(/*block=*/false);
      if (stopping_ && any_running() && Clock::now() >= kill_deadline_) stop_all(SIGKILL);
      if (stopping_ && any_running() && Clock::now() >= kill_deadline_ + seconds(kUnkillableWaitS)) {
        leave_unkillable_behind();
        break;
      }
      if (!stopping_ && settle_until_ != Clock::time_point{} && Clock::now() >= settle_until_) {
        begin_stop(SIGTERM, stop_grace());  // the first failure's peers that are still running
      }
      if (!stopping_ && preempted_deadline_ != Clock::time_point{} && Clock::now() >= preempted_deadline_) {
        begin_stop(SIGTERM, stop_grace());  // a preempted worker's peers that did not follow it
      }
      if (!any_running()) {
        const auto now = Clock::now();
        if (all_exited_at == Clock::time_point{}) {
          // The workers are gone; whatever they started goes too (SIGTERM now, SIGKILL after the grace period).
          all_exited_at = now;
          leftovers_deadline = now + stop_grace();
          signal_leftovers(SIGTERM);
        }
        const bool leftovers = leftovers_alive();
        if (leftovers && now >= leftovers_deadline) signal_leftovers(SIGKILL);
        // Grandchildren could hold a pipe open: read what is left, but not forever.
        const bool drained = !any_stream_open() || now - all_exited_at > std::chrono::seconds(2);
        if (drained && (!leftovers || now > leftovers_deadline + std::chrono::seconds(2))) break;
      }
    }
    for (auto& w : workers_) {
      for (Stream* s : {&w.out, &w.err}) {
        if (s->fd >= 0) {
          if (!s->partial.empty()) emit(w, *s, s->partial);
          ::close(s->fd);
          s->fd = -1;
        }
      }
    }
    std::fflush(stdout);
    std::fflush(stderr);
  }

  /// Workers that SIGKILL has not ended (frozen by a cgroup freezer, as `docker pause` does, or in an uninterruptible
  /// wait such as a hung NFS mount) would hold the launcher until they can run again: it stops waiting for them.
  /// Their SIGKILL stays pending, so they end as soon as they run.
  void leave_unkillable_behind() {
    for (auto& w : workers_) {
      if (!w.running) continue;
      w.unkillable = true;
      w.frozen = true;  // it stopped answering: for the blame
      std::fprintf(stderr,
                   "accelerate-cpp launch: rank %d (local rank %d, pid %d) could not be killed: it is still there "
                   "%.0f s after SIGKILL (frozen, as by `docker pause` or a cgroup freezer, or in an uninterruptible "
                   "wait such as a hung NFS mount). The launcher exits without it; it ends when it can run again.\n",
                   w.spec->rank, w.spec->local_rank, static_cast<int>(w.pid), kUnkillableWaitS);
      if (first_failure_ < 0) first_failure_ = static_cast<int>(&w - workers_.data());
    }
    std::fflush(stderr);
  }

  /// The workers ended after a preemption notice, or on their own with kExitPreempted or 0: the launcher's code
  /// (kExitPreempted, or 0 when all had finished), or nullopt when that is not how they ended.
  std::optional<int> preempted_ending() const {
    size_t saved = 0, done = 0, stopped = 0;
    for (const auto& w : workers_) {
      if (w.unkillable) return std::nullopt;
      if (preempted(w.status)) {
        ++saved;
      } else if (finished(w.status)) {
        ++done;
      } else if (w.stopped_by_us && !launcher_signal_ && first_failure_ < 0) {
        ++stopped;  // it did not follow a preempted peer within the grace period
      }
    }
    if (saved + done + stopped != workers_.size() || (saved == 0 && !launcher_signal_)) return std::nullopt;
    const std::string notice = launcher_signal_ ? "received " + signal_name(launcher_signal_) + "; " : "";
    if (saved == 0) {
      std::fprintf(stderr, "accelerate-cpp launch: %sall %zu worker(s) had finished (exit 0).\n", notice.c_str(),
                   workers_.size());
      return 0;
    }
    std::fprintf(stderr, "accelerate-cpp launch: %s%zu worker(s) saved and exited with code %d (preempted, resumable)",
                 notice.c_str(), saved, kExitPreempted);
    if (done > 0) std::fprintf(stderr, "; %zu had finished", done);
    if (stopped > 0) std::fprintf(stderr, "; %zu did not follow within the grace period and were stopped", stopped);
    std::fprintf(stderr, ".\n");
    return kExitPreempted;
  }

  /// After a preemption notice that ended workers by the signal itself, nothing saved: why, and what to change.
  std::string unheeded_notice_hint() const {
    if (launcher_signal_ != SIGTERM && launcher_signal_ != SIGUSR1) return "";
    size_t killed = 0;
    for (const auto& w : workers_) killed += WIFSIGNALED(w.status) && WTERMSIG(w.status) == launcher_signal_;
    if (killed == 0) return "";
    return " " + std::to_string(killed) + " ended by the " + signal_name(launcher_signal_) +
           " itself, without saving: a program saves on a notice only once it has called check_preemption(), and "
           "only when the signal reaches it, so a wrapper script must `exec` the program (docs/preemption.md).";
  }

  int finish() {
    if (const auto code = preempted_ending()) return *code;
    if (launcher_signal_) {
      std::fprintf(stderr, "accelerate-cpp launch: received %s; stopped all %zu worker(s).%s\n",
                   signal_name(launcher_signal_).c_str(), workers_.size(), unheeded_notice_hint().c_str());
      return 128 + launcher_signal_;
    }
    if (first_failure_ < 0) return 0;
    std::vector<WorkerOutcome> outcomes;
    for (const auto& w : workers_) {
      const bool own_failure = (failed(w.status) && !w.stopped_by_us) || w.unkillable;
      outcomes.push_back({w.spec->rank, own_failure, w.failure_order, w.frozen,
                          own_failure ? read_collective_failure(w.error_file) : std::nullopt});
    }
    const auto verdict = blame(outcomes);
    const Worker* culprit = nullptr;
    for (const auto& w : workers_) {
      if (w.spec->rank == verdict.rank) culprit = &w;
    }
    const auto& first = workers_[first_failure_];
    std::fprintf(stderr, "\naccelerate-cpp launch: FAILED\n");
    if (verdict.unresponsive) {
      if (culprit && finished(culprit->status)) {
        // It returned from main while a peer still waited for it in a collective (the launcher may have signalled
        // it too, before it was reaped: the code says it ended on its own).
        std::fprintf(stderr,
                     "  root cause: rank %d (local rank %d, pid %d) %s while the others still called collectives: "
                     "%s. Every process must run the same collectives: one that returns early (an extra step, a "
                     "loop of another length) leaves the others waiting.\n",
                     verdict.rank, culprit->spec->local_rank, static_cast<int>(culprit->pid),
                     describe_status(culprit->status).c_str(), verdict.reason.c_str());
      } else if (culprit) {
        std::fprintf(stderr, "  root cause: rank %d (local rank %d, pid %d) stopped answering: %s\n", verdict.rank,
                     culprit->spec->local_rank, static_cast<int>(culprit->pid), verdict.reason.c_str());
      } else {
        std::fprintf(stderr, "  root cause: rank %d (on another machine) stopped answering: %s\n", verdict.rank,
                     verdict.reason.c_str());
      }
    } else {
      const auto& w = culprit ? *culprit : first;
      std::fprintf(stderr, "  root cause: rank %d (local rank %d, pid %d) %s\n", w.spec->rank, w.spec->local_rank,
                   static_cast<int>(w.pid), describe_status(w.status).c_str());
    }
    // The stderr of the first failure (for an unresponsive rank it holds the hang report), then the culprit's.
    print_tail(first);
    if (culprit && culprit != &first) print_tail(*culprit);
    for (const auto& other : workers_) {
      if (&other == culprit && !verdict.unresponsive) continue;
      std::fprintf(stderr, "  rank %d %s%s\n", other.spec->rank,
                   other.unkillable ? "could not be killed (left running)" : describe_status(other.status).c_str(),
                   other.stopped_by_us && !other.unkillable ? " (stopped by the launcher)" : "");
    }
    std::fflush(stderr);
    const auto& code_from = culprit && !verdict.unresponsive ? *culprit : first;
    return exit_code_for(code_from.status);
  }

  static void print_tail(const Worker& w) {
    if (w.tail.empty()) return;
    std::fprintf(stderr, "  last stderr lines of rank %d:\n", w.spec->rank);
    for (const auto& line : w.tail) std::fprintf(stderr, "    | %s\n", line.c_str());
  }

  SupervisorOptions options_;
  bool prefix_;
  std::vector<Worker> workers_;
  bool stopping_ = false;
  int launcher_signal_ = 0;
  int first_failure_ = -1;
  int failures_ = 0;
  Clock::time_point kill_deadline_{};
  Clock::time_point preempted_deadline_{};  // set when the first worker exits as preempted
  // After the first failure, the others are stopped only this much later: a rank that returned from main makes its
  // peers fail (the connection resets) while it is still exiting, and its own exit, seen in this window, is the
  // root cause the blame must name instead of "killed by the launcher".
  static constexpr std::chrono::milliseconds kSettle{1000};
  Clock::time_point settle_until_{};
  Clock::time_point signalled_at_{};  // when the launcher got its (first) signal
};

}  // namespace

SupervisionResult supervise(const std::vector<WorkerSpec>& workers, const SupervisorOptions& options) {
  ACCELERATE_CHECK(!workers.empty(), LaunchError, "no worker to start on this machine.");
  Supervisor supervisor(workers, options);
  const int code = supervisor.run();
  return {code, supervisor.interrupted()};
}

}  // namespace accelerate::launcher
