// Internal: the hang report (Horovod's stall inspector, for every run). Each rank numbers its collectives and
// publishes "which one, entered or finished, since when" to the rendezvous store from a background thread
// (coalesced to at most one store write per interval, so the training thread pays an atomic update, not a
// network round trip). When a collective times out, or waits longer than a warning threshold, the report says
// which ranks have not arrived and what each was last doing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <torch/csrc/distributed/c10d/Store.hpp>

namespace accelerate::detail {

class StallInspector {
 public:
  /// warn_after: a collective waiting longer prints the report once as a warning (0: never).
  StallInspector(c10::intrusive_ptr<c10d::Store> store, int rank, int world, std::chrono::milliseconds warn_after);
  ~StallInspector();
  StallInspector(const StallInspector&) = delete;
  StallInspector& operator=(const StallInspector&) = delete;

  /// The calling rank starts collective number sequence()+1 named `op`.
  void enter(const char* op);
  void leave();
  int64_t sequence() const;
  /// What every rank published, as sentences; names the ranks that have not reached this rank's collective.
  std::string report();
  /// Stops the thread (before the store goes away).
  void stop();

 private:
  struct Status {
    int64_t sequence = 0;
    std::string op = "(none yet)";
    bool inside = false;
    double since = 0;  // wall time of the last enter/leave
  };
  void run();
  void publish(const Status& s);

  c10::intrusive_ptr<c10d::Store> store_;
  int rank_, world_;
  std::chrono::milliseconds warn_after_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  Status status_;
  bool dirty_ = false, stopping_ = false, warned_ = false;
  std::thread thread_;
};

}  // namespace accelerate::detail
