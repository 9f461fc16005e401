// HF's set_trigger/check_trigger, and check_preemption: flags every process agrees on with one all-reduce, the
// latter raised by SIGTERM/SIGUSR1.
#include <accelerate/accelerator.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <ctime>
#include <mutex>

#include "detail/communicator.hpp"
#include "detail/internal_collectives.hpp"
#include "detail/triggers.hpp"

namespace accelerate {
namespace {

// A signal is delivered to the process, and a handler can only reach static storage: these are the one piece of
// process-wide state, set by the first notice and never lowered (the process is being stopped).
volatile std::sig_atomic_t g_preemption_signal = 0;
volatile std::sig_atomic_t g_first_notice_s = 0;  // CLOCK_MONOTONIC seconds of the first notice

// One notice often arrives twice: SLURM and container runtimes signal every process of a job step, and the
// launcher forwards what it got. A second signal within this window is the same notice; a later one stops the
// process (a program that never saves).
constexpr long kSameNoticeS = 10;

// How often check_preemption's processes exchange their flags (seconds of wall time, about).
constexpr double kCheckPeriodS = 0.25;

long monotonic_s() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return static_cast<long>(now.tv_sec);
}

extern "C" void on_preemption_signal(int sig) {
  if (g_preemption_signal == 0) {
    g_first_notice_s = static_cast<std::sig_atomic_t>(monotonic_s());
    g_preemption_signal = sig;
    return;
  }
  if (monotonic_s() - g_first_notice_s <= kSameNoticeS) return;
  ::signal(sig, SIG_DFL);  // the default action: end the process, as without a handler
  ::raise(sig);
}

/// SIGTERM and SIGUSR1 raise the flag instead of stopping the process. A handler the program installed itself,
/// or an ignored signal, is left as it is (check_preemption then never sees that signal).
void install_preemption_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGTERM, SIGUSR1}) {
      struct sigaction current {};
      if (::sigaction(sig, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = on_preemption_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;  // a signal must not fail a blocking read or wait
      ::sigaction(sig, &sa, nullptr);
    }
  });
}

}  // namespace

bool Accelerator::check_trigger(std::source_location where) {
  detail::CallScope call(detail::communicator_of(*state_), "check_trigger", where);
  const bool any = detail::any_process(*state_, triggers_->raised, "check_trigger");
  if (any) triggers_->raised = false;  // as HF: the flag is lowered once it fired
  return any;
}

void Accelerator::set_trigger() { triggers_->raised = true; }

bool Accelerator::check_preemption(std::source_location where) {
  install_preemption_handlers();
  auto* comm = detail::communicator_of(*state_);
  if (!comm) return g_preemption_signal != 0;
  // A collective at every step costs a step's worth of synchronisation (5-19% of a small CPU model's step here:
  // bench/preemption_check_bench.sh). So the processes exchange their flags on the same calls only, about every
  // kCheckPeriod of wall time, as rank 0 proposes with each exchange: every process still stops at the same step.
  auto& cadence = *triggers_;
  if (--cadence.countdown > 0) return false;
  const auto now = std::chrono::steady_clock::now();
  int proposed = 1;
  if (cadence.last != std::chrono::steady_clock::time_point{}) {
    const double per_call = std::chrono::duration<double>(now - cadence.last).count() / cadence.interval;
    proposed = static_cast<int>(std::clamp(kCheckPeriodS / std::max(per_call, 1e-6), 1.0, 1000.0));
  }
  cadence.last = now;
  detail::CallScope call(comm, "check_preemption", where);
  const auto all = detail::all_gather_ints(*state_, {g_preemption_signal != 0 ? 1 : 0, proposed}, "check_preemption");
  cadence.interval = cadence.countdown = all[0][1];  // rank 0's proposal
  return std::any_of(all.begin(), all.end(), [](const auto& v) { return v[0] != 0; });
}

}  // namespace accelerate
