// Internal: the hang report (Horovod's stall inspector, for every run). Each rank numbers its collectives and
// publishes "which one, entered or finished, since when" to the rendezvous store. When a collective times out, or
// waits longer than a warning threshold, the report says which ranks have not arrived and what each last did.
//
// No thread that matters ever waits on the store: the store is served by rank 0 (or torchelastic's agent), and a
// stopped, hung or unreachable host makes every store call block without limit (TCPStore's get/set/check have no
// deadline). So all store traffic runs on one I/O thread of its own, over its own connection (a clone of the
// rendezvous store), and the report is built from what that thread last read. A store call that does not return
// is itself evidence: the report names the store's host as unreachable. The training thread pays a few field
// updates under a lock per collective.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

namespace accelerate::detail {

/// What a hang report found: its text and the ranks that had not reached this rank's collective (or could not
/// be reached at all).
struct HangReport {
  std::string text;
  std::vector<int> missing;
  int64_t sequence = 0;
  std::string op;
};

/// The call of the program that runs a collective: a public collective or an Accelerator method, and where the
/// program called it. Every pointer is a static string (a literal, std::source_location::file_name()), so
/// recording one costs no allocation.
struct CallSite {
  const char* name = nullptr;
  const char* file = nullptr;
  uint32_t line = 0;
};

/// "save_state (train.cpp:61)": the call and its file's name and line; the collective `op` is added when it is not
/// the call itself ("save_state (train.cpp:61), in its gather_object"); just `op` without a call.
std::string describe_call(const CallSite& call, const char* op);

/// A certain deadlock: two ranks called different collectives as the same collective number, so neither can ever
/// complete (the hang report's bookkeeping numbers every public collective the same way on every rank).
struct Deadlock {
  int64_t sequence = 0;
  /// Each rank's call at that number: "rank 0 is in save_state (train.cpp:61), in its gather_object; rank 1 is in
  /// wait_for_everyone (train.cpp:64)"; a rank not there yet says where it is.
  std::string text;
  /// The names of the calls that differ (for advice: "save_state must be called on every process").
  std::vector<std::string> calls;
};

class StallInspector {
 public:
  /// warn_after: a collective waiting longer prints the report once as a warning (0: never). store_host: the rank
  /// whose process serves `store` (-1 when an agent outside the ranks does).
  StallInspector(c10::intrusive_ptr<c10d::Store> store, int rank, int world, std::chrono::milliseconds warn_after,
                 int store_host);
  ~StallInspector();
  StallInspector(const StallInspector&) = delete;
  StallInspector& operator=(const StallInspector&) = delete;

  /// The calling rank starts collective number sequence()+1 named `op` (a static string), for `call`.
  void enter(const char* op, const CallSite& call = {});
  void leave();
  int64_t sequence() const;
  /// What every rank published, as sentences. Asks for a fresh read first and waits at most about a second for
  /// it; never blocks on the store itself.
  HangReport report();
  /// A certain deadlock, judged from what was last read of the peers (the I/O thread reads them about once a
  /// second while this rank waits): some peer's collective at a number this rank also reached differs from this
  /// rank's. Never waits on the store; a slow peer (not at that number yet) is never a deadlock.
  std::optional<Deadlock> deadlock() const;
  /// Stops the threads (before the store goes away). An I/O thread stuck in a store call is left behind
  /// (detached; it owns what it uses), so stopping never hangs.
  void stop();

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::thread io_, watcher_;
};

}  // namespace accelerate::detail
