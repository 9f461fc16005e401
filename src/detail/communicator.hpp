// Internal: the c10d process group behind a ProcessState, and the one place where c10d errors become ours.
// Not installed; c10d types never appear in public headers.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <source_location>
#include <string>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <accelerate/environment.hpp>
#include <accelerate/error.hpp>

#include "detail/error_text.hpp"
#include "detail/stall_inspector.hpp"

namespace accelerate {
class ProcessState;
}

namespace accelerate::detail {

class CommunicationBackend;

/// How debug mode compares the ranks' tensors before a collective.
enum class ShapeRule {
  Same,          ///< reduce, broadcast: identical shapes
  SameTrailing,  ///< gather: any first dimension, the rest identical
  SameDims,      ///< pad_across_processes: the same number of dims
};

/// What a Communicator is created with (resolved once, by ProcessState).
struct CommunicatorOptions {
  std::chrono::milliseconds timeout{600000};
  /// A collective waiting longer prints the hang report as a warning (0: never).
  std::chrono::milliseconds stall_warning{60000};
  /// Debug mode (ACCELERATE_DEBUG_MODE / ProcessStateOptions::debug).
  bool debug = false;
  /// The hang report's bookkeeping (ACCELERATE_CPP_HANG_REPORT=0 turns it off).
  bool hang_report = true;
};

class Communicator {
 public:
  /// Rendezvous over a TCPStore (rank 0 hosts it unless torchelastic's agent does) and creation of the
  /// backend's process group. Throws DistributedOperationError / TimeoutError with the fix.
  Communicator(const LaunchEnvironment& env, const CommunicationBackend& backend, const CommunicatorOptions& options);
  ~Communicator();

  c10d::ProcessGroup& group();
  const c10::intrusive_ptr<c10d::ProcessGroup>& group_ptr() const { return group_; }
  /// The backend for CPU tensors (always Gloo): object and shape exchanges go through it.
  c10d::Backend& cpu_backend();

  /// Waits for `work`, translating failures into DistributedOperationError/TimeoutError that name the
  /// operation and the rank. After a failure the group is marked broken (Gloo peers are out of step).
  /// A Gloo work is waited for in slices, and between them the hang report's bookkeeping is asked whether the
  /// ranks called different collectives (a certain deadlock): then this rank fails within seconds, with each
  /// rank's call, instead of at the timeout. (An NCCL work's wait does not block the CPU; it is left as it is.)
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* op);
  /// Turns `error`, raised by c10d or gloo while running `op` (a collective, or the gradient all-reduce inside
  /// backward), into our TimeoutError / DistributedOperationError with the hang report, marks the group broken,
  /// and records the failure in the launcher's error file. c10 stack traces are left out of the message.
  [[noreturn]] void fail(const char* op, const std::exception& error);
  /// A certain deadlock was seen while waiting for `work` in `op`: raises it (DistributedOperationError with each
  /// rank's call and what to do), marks the group broken, and abandons `work`, which never completes (its
  /// Gloo thread stays blocked, so the group is never destroyed: destroying it would wait for that thread).
  [[noreturn]] void fail_deadlock(const char* op, const Deadlock& deadlock, const c10::intrusive_ptr<c10d::Work>& work);

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& backend_name() const { return backend_name_; }

  /// Bytes every rank reserves for data in the first round of a gather: the largest gather among the last few
  /// on this group, up to a limit above which padding would cost more than the extra round it saves. Agreed by
  /// all ranks because each derives it from the same gathered headers.
  int64_t gather_capacity() const;
  void record_gather_bytes(int64_t largest);

  /// Which exceptions of an internal collective become ours.
  enum class Translate {
    AnyError,             ///< every exception that is not already ours (the call is a collective and nothing else)
    CommunicationErrors,  ///< only c10d's and gloo's (inside backward, autograd raises a user's errors too)
  };
  /// The preamble of internal collectives (DDP's buffer broadcast, ZeRO's all-gather), as the public ones have in
  /// collectives.cpp: `op` is named in the hang report while `f` runs, and an exception from c10d or gloo becomes
  /// ours through fail(). Returns what `f` returns.
  template <class F>
  decltype(auto) run(const char* op, F&& f, Translate translate = Translate::AnyError);
  /// The same for a collective that runs inside another one's scope (a reduce-scatter launched within backward),
  /// or that the hang report does not count (prepare's broadcast): the translation without a scope of its own.
  template <class F>
  decltype(auto) translating(const char* op, F&& f, Translate translate = Translate::AnyError);

  /// Throws StateError if the group was shut down or broken by an earlier failure.
  void check_usable(const char* op) const;
  void shutdown();

  /// The hang report's bookkeeping around one public collective (see stall_inspector.hpp).
  void enter(const char* op);
  void leave();
  /// The program's call that the collectives entered from now on belong to, until end_call; only the outermost
  /// call counts (save_state's own gathers are save_state's). `name` is a static string.
  void begin_call(const char* name, const std::source_location& where);
  void end_call();
  /// Debug mode (ACCELERATE_DEBUG_MODE / ProcessStateOptions::debug) is on.
  bool debug() const { return debug_; }
  /// Only for bench/debug_overhead_bench.cpp, which alternates the modes in one process group to compare them;
  /// the library sets both once, at construction (CommunicatorOptions).
  void set_modes_for_benchmark(bool hang_report, bool debug, bool deadlock_check = true) {
    hang_report_ = hang_report;
    debug_ = debug;
    deadlock_check_ = deadlock_check;
  }
  /// Debug mode: every rank exchanges the operation, dtype, device and shape of `tensor` first; any mismatch is a
  /// DistributedOperationError on every rank naming the operation and each rank's shape, instead of a hang.
  void verify(const char* op, const at::Tensor& tensor, ShapeRule rule, c10::DeviceType expected_device, int root = -1);

 private:
  /// Throws the deadlock's DistributedOperationError (each rank's call, what to do) and records it.
  [[noreturn]] void raise_deadlock(const char* op, const Deadlock& deadlock);

  int rank_, world_;
  std::chrono::milliseconds timeout_;
  std::string backend_name_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  std::string broken_;  // why the group is unusable, empty while it is fine
  std::deque<int64_t> recent_gather_bytes_;
  std::unique_ptr<StallInspector> inspector_;
  CallSite call_;
  int call_depth_ = 0;
  std::string error_file_;
  bool debug_ = false;
  bool hang_report_ = true;
  bool deadlock_check_ = true;  // wait() in slices, asking the hang report for a deadlock (off only in the bench)
};

/// RAII of Communicator::enter/leave: every public collective holds one while it runs.
class CollectiveScope {
 public:
  CollectiveScope(Communicator& comm, const char* op) : comm_(comm) { comm_.enter(op); }
  ~CollectiveScope() { comm_.leave(); }
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;

 private:
  Communicator& comm_;
};

/// RAII of Communicator::begin_call/end_call around a public call that runs collectives; nothing in a world of one
/// (`comm` null).
class CallScope {
 public:
  CallScope(Communicator* comm, const char* name, const std::source_location& where) : comm_(comm) {
    if (comm_) comm_->begin_call(name, where);
  }
  ~CallScope() {
    if (comm_) comm_->end_call();
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  Communicator* comm_;
};

/// The communicator behind `state`'s collectives: null for a single process (no group).
Communicator* communicator_of(const ProcessState& state);

/// Strategy for one communication backend (Gloo on CPU, NCCL on CUDA): chosen once, never an if-chain.
class CommunicationBackend {
 public:
  virtual ~CommunicationBackend() = default;
  virtual std::string name() const = 0;
  /// Creates the backend(s) over `store` and registers them on `group`.
  virtual void attach(c10d::ProcessGroup& group, const c10::intrusive_ptr<c10d::Store>& store,
                      const LaunchEnvironment& env, std::chrono::milliseconds timeout) const = 0;
};

/// Debug mode's device rule: every rank's tensor on the same device type, the CPU or the job's device ("" when
/// fine, else the problem).
std::string debug_device_problem(c10::DeviceType tensor, c10::DeviceType first, c10::DeviceType job);

/// An exception raised by a communication library (gloo's types, c10d's DistError family), as opposed to a
/// user's or autograd's error.
bool is_communication_error(const std::exception& error);

template <class F>
decltype(auto) Communicator::translating(const char* op, F&& f, Translate translate) {
  try {
    return std::forward<F>(f)();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    if (translate == Translate::AnyError || is_communication_error(e)) fail(op, e);
    throw;
  }
}

template <class F>
decltype(auto) Communicator::run(const char* op, F&& f, Translate translate) {
  CollectiveScope scope(*this, op);
  return translating(op, std::forward<F>(f), translate);
}

std::unique_ptr<CommunicationBackend> make_gloo_backend();
/// nullptr when the library was built without CUDA.
std::unique_ptr<CommunicationBackend> make_nccl_backend();
/// Gloo for CPU tensors; every group has one (NCCL groups too, for objects and shapes).
c10::intrusive_ptr<c10d::Backend> create_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env, std::chrono::milliseconds timeout);

}  // namespace accelerate::detail
