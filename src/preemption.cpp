// HF's set_trigger/check_trigger, and check_preemption: flags every process agrees on with one all-reduce, the
// latter raised by SIGTERM/SIGUSR1.
#include <accelerate/accelerator.hpp>

#include <csignal>
#include <mutex>

#include "detail/communicator.hpp"
#include "detail/internal_collectives.hpp"

namespace accelerate {
namespace {

// A signal is delivered to the process, and a handler can only reach static storage: this flag is the one piece
// of process-wide state, set once and never lowered (the process is being stopped).
volatile std::sig_atomic_t g_preemption_signal = 0;

extern "C" void on_preemption_signal(int sig) { g_preemption_signal = sig; }

/// SIGTERM and SIGUSR1 raise the flag instead of stopping the process, once: SA_RESETHAND restores the default
/// action, so a second signal stops a program that never saves. A handler the program installed itself is left
/// in place (check_preemption then never sees that signal).
void install_preemption_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGTERM, SIGUSR1}) {
      struct sigaction current {};
      if (::sigaction(sig, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = on_preemption_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART | SA_RESETHAND;  // SA_RESTART: a signal must not fail a blocking read or wait
      ::sigaction(sig, &sa, nullptr);
    }
  });
}

}  // namespace

bool Accelerator::check_trigger(std::source_location where) {
  detail::CallScope call(state_->communicator(), "check_trigger", where);
  const bool any = detail::any_process(*state_, trigger_, "check_trigger");
  if (any) trigger_ = false;  // as HF: the flag is lowered once it fired
  return any;
}

bool Accelerator::check_preemption(std::source_location where) {
  detail::CallScope call(state_->communicator(), "check_preemption", where);
  install_preemption_handlers();
  return detail::any_process(*state_, g_preemption_signal != 0, "check_preemption");
}

}  // namespace accelerate
