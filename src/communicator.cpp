// Rendezvous, process-group creation and error translation for collectives.
#include "detail/communicator.hpp"

#include <accelerate/error.hpp>

#include "detail/stall_inspector.hpp"

#include <condition_variable>
#include <cstdio>
#include <exception>
#include <fstream>
#include <mutex>
#include <iostream>
#include <thread>
#include <typeinfo>

#include <nlohmann/json.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace accelerate::detail {
namespace {

bool contains(const std::string& text, const char* needle) { return text.find(needle) != std::string::npos; }

double seconds(std::chrono::milliseconds t) { return static_cast<double>(t.count()) / 1000.0; }

/// The launcher's error file (torchrun's TORCHELASTIC_ERROR_FILE, for collectives): what this rank saw when its
/// collective failed, so that the launcher can blame the rank that stopped answering. Best effort: a failure to
/// write it must not hide the error being raised.
void record_failure(const std::string& path, int rank, const char* op, bool timed_out, const HangReport& report,
                    const std::string& message) {
  if (path.empty()) return;
  nlohmann::json j{{"rank", rank},
                   {"error", timed_out ? "TimeoutError" : "DistributedOperationError"},
                   {"operation", op},
                   {"collective", report.sequence},
                   {"missing_ranks", report.missing},
                   {"message", message.substr(0, 4000)}};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump();
    if (!out.good()) return;
  }
  std::rename(tmp.c_str(), path.c_str());
}

/// Gloo's words when data of another size arrives than the collective posted for: the ranks called different
/// collectives.
bool is_gloo_mismatch(const std::string& message) {
  return contains(message, "collective mismatch") || contains(message, "doesn't match expected size");
}

/// Gloo's I/O error (gloo::IoException, not in the wheel's headers: known by its mangled name) for a peer whose
/// connection closed or reset: the peer exited, often after an error of its own that is the real cause.
bool is_gloo_lost_peer(const std::exception& error) {
  const std::string type = typeid(error).name();
  return contains(type, "gloo") && contains(type, "IoException");
}

std::terminate_handler g_previous_terminate = nullptr;

/// Gloo raises a mismatch, or a lost peer, in its own threads, where nothing catches it (a collective inside
/// autograd, DDP's bucket rebuild): std::terminate would abort the process (SIGABRT, no error the program can catch,
/// and the launcher would blame this rank instead of the peer that failed first). Parked here instead, that thread
/// delivers nothing more, and the thread waiting for the collective finds the mismatch through the hang report
/// within seconds (or is stopped by the launcher with the peers of the first failure, or reaches the timeout). A
/// process-wide hook by nature: it is installed once, and passes every other termination to the handler it
/// replaced.
[[noreturn]] void on_terminate() {
  if (const auto pending = std::current_exception()) {
    try {
      std::rethrow_exception(pending);
    } catch (const std::exception& e) {
      if (is_gloo_mismatch(e.what()) || is_gloo_lost_peer(e)) {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
      }
    } catch (...) {
    }
  }
  if (g_previous_terminate) g_previous_terminate();
  std::abort();
}

/// The client's handshake with a port that accepts connections but never answers (a stale or foreign service on
/// it) blocks inside TCPStore's constructor past its timeout.
struct SilentStore : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A client TCPStore, constructed on a thread of its own so that the wait ends at `limit` whatever the socket does;
/// a thread still blocked then is left behind (it ends with the process, which is about to report the error).
c10::intrusive_ptr<c10d::Store> connect_client_within(const std::string& host, const c10d::TCPStoreOptions& options,
                                                      std::chrono::milliseconds limit) {
  struct Result {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    c10::intrusive_ptr<c10d::Store> store;
    std::exception_ptr error;
  };
  auto result = std::make_shared<Result>();
  std::thread([result, host, options] {
    c10::intrusive_ptr<c10d::Store> store;
    std::exception_ptr error;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(result->mutex);
    result->store = std::move(store);
    result->error = error;
    result->done = true;
    result->done_cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(result->mutex);
  if (!result->done_cv.wait_for(lock, limit, [&] { return result->done; })) {
    throw SilentStore("the connection was accepted, but nothing answered the rendezvous handshake");
  }
  if (result->error) std::rethrow_exception(result->error);
  return result->store;
}

c10::intrusive_ptr<c10d::Store> connect_store(const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = env.rank == 0 && !env.agent_store;
  options.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
  options.waitWorkers = !env.agent_store;
  options.timeout = timeout;
  const std::string where = concat(env.master_addr, ":", env.master_port);
  try {
    if (options.isServer) return c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    // TCPStore's own connect retries end at the timeout; a little longer lets its clearer errors come first.
    return connect_client_within(env.master_addr, options, timeout + std::chrono::seconds(2));
  } catch (const SilentStore& e) {
    throw TimeoutError(concat("Rank ", env.rank, " of ", env.world_size, " could not complete the rendezvous at ",
                              where, " within ", seconds(timeout), " s: ", e.what(),
                              ". Something else listens on that port (a stale job, another service): check "
                              "MASTER_ADDR/MASTER_PORT (launch: --main_process_ip/--main_process_port) and that "
                              "rank 0 of this job runs there."));
  } catch (const std::exception& e) {
    const std::string what = message_of(e);
    if (contains(what, "already in use") || contains(what, "EADDRINUSE")) {
      throw DistributedOperationError(concat(
          "Rank 0 cannot host the rendezvous on port ", env.master_port,
          ": the address is already in use by another "
          "process. Pick a free port (launch: --main_process_port, or leave it unset to get a free one; torchrun: "
          "--master_port; srun or mpirun: export MASTER_PORT), or stop the process holding it. Detail: ",
          what));
    }
    if (contains(what, "timed out") || contains(what, "Timed out") || contains(what, "timeout")) {
      throw TimeoutError(concat(
          "Rank ", env.rank, " of ", env.world_size, " could not complete the rendezvous at ", where, " within ",
          seconds(timeout), " s. ",
          options.isServer ? "Some ranks never connected: check that every process was started and points at "
                             "this host (MASTER_ADDR/MASTER_PORT). "
                           : "Rank 0 is not reachable there: check MASTER_ADDR/MASTER_PORT (launch: "
                             "--main_process_ip/--main_process_port), that rank 0 is running, and the firewall. ",
          "Raise the limit with ACCELERATE_CPP_TIMEOUT=<seconds>. Detail: ", what));
    }
    throw DistributedOperationError(concat("Rank ", env.rank, " failed to join the rendezvous at ", where, ": ", what));
  }
}

}  // namespace

Communicator::Communicator(const LaunchEnvironment& env, const CommunicationBackend& backend,
                           const CommunicatorOptions& options)
    : rank_(env.rank),
      world_(env.world_size),
      timeout_(options.timeout),
      backend_name_(backend.name()),
      error_file_(env.error_file),
      debug_(options.debug),
      hang_report_(options.hang_report) {
  const auto timeout = options.timeout;
  static const bool parked_mismatches = [] {
    g_previous_terminate = std::set_terminate(on_terminate);
    return true;
  }();
  (void)parked_mismatches;
  store_ = connect_store(env, timeout);
  // One group per job; the prefix keeps our keys apart from torchelastic's in a shared agent store, and from an
  // earlier attempt's there (the agent's store outlives a restart, with the keys of the group that failed).
  const std::string prefix = concat("accelerate/attempt_", env.restart_count, "/");
  auto store = c10::make_intrusive<c10d::PrefixStore>(prefix + "0/", store_);
  group_ = c10::make_intrusive<c10d::ProcessGroup>(store, rank_, world_);
  try {
    backend.attach(*group_, store, env, timeout);
  } catch (const std::exception& e) {
    throw DistributedOperationError(concat("Rank ", rank_, " of ", world_, " could not create the ", backend_name_,
                                           " process group (its peers may have died, or the network interface is "
                                           "wrong: set GLOO_SOCKET_IFNAME for multi-node jobs): ",
                                           message_of(e)));
  }
  group_->setGroupName("0");
  // The hang report talks to the store over a connection of its own (see stall_inspector.hpp).
  inspector_ =
      std::make_unique<StallInspector>(c10::make_intrusive<c10d::PrefixStore>(prefix + "status/", store_->clone()),
                                       rank_, world_, options.stall_warning, env.agent_store ? -1 : 0);
}

Communicator::~Communicator() {
  if (inspector_) inspector_->stop();
}

void Communicator::enter(const char* op) {
  if (hang_report_) inspector_->enter(op, call_);
}

void Communicator::begin_call(const char* name, const std::source_location& where) {
  if (call_depth_++ == 0) call_ = {name, where.file_name(), where.line()};
}

void Communicator::end_call() {
  if (--call_depth_ == 0) call_ = {};
}
void Communicator::leave() {
  if (hang_report_) inspector_->leave();
}

c10d::ProcessGroup& Communicator::group() { return *group_; }

c10d::Backend& Communicator::cpu_backend() { return *group_->getBackend(c10::DeviceType::CPU); }

void Communicator::check_usable(const char* op) const {
  ACCELERATE_CHECK(group_, StateError, op, " called on rank ", rank_,
                   " after the process group was destroyed (destroy_process_group / end_training).");
  ACCELERATE_CHECK(broken_.empty(), StateError, op, " called on rank ", rank_,
                   " after an earlier collective failed, which leaves the ranks out of step: ", broken_);
}

namespace {

// The first slice is longer than a healthy collective usually takes, so that most waits are a single one; the
// peers' statuses are read about once a second anyway.
constexpr auto kFirstSlice = std::chrono::milliseconds(500);
constexpr auto kSlice = std::chrono::milliseconds(200);

/// Waits up to `slice`; false when `work` is still running. A finished work's own error is rethrown.
bool finished_within(c10d::Work& work, std::chrono::milliseconds slice) {
  try {
    return work.wait(slice);
  } catch (const std::exception&) {
    if (!work.isCompleted()) return false;  // c10d's "Operation timed out!": the slice ended
  }
  work.wait();  // it completed (meanwhile, or with an error of its own): returns, or throws that error
  return true;
}

}  // namespace

void Communicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* op) {
  std::optional<Deadlock> deadlock;
  try {
    // Only a Gloo work blocks this thread in wait(); NCCL's returns at once (the stream waits).
    if (!hang_report_ || !deadlock_check_ || !dynamic_cast<c10d::ProcessGroupGloo::AsyncWork*>(work.get())) {
      work->wait();
      return;
    }
    for (auto slice = kFirstSlice; !finished_within(*work, slice); slice = kSlice) {
      if ((deadlock = inspector_->deadlock())) break;
    }
  } catch (const std::exception& e) {
    fail(op, e);
  }
  if (deadlock) fail_deadlock(op, *deadlock, work);
}

bool is_communication_error(const std::exception& error) {
  if (dynamic_cast<const c10::DistError*>(&error)) return true;
  // gloo's exception types are not in the torch wheel's headers; their mangled names say where they come from.
  return std::string(typeid(error).name()).find("gloo") != std::string::npos;
}

namespace {

// Longer than the hang report's staleness limit for small worlds (four heartbeats of about 0.5 s).
constexpr auto kStaleEvidenceWait = std::chrono::milliseconds(2500);

/// What to do about a deadlock between `calls`: the calls that are meant for every process say so.
std::string deadlock_advice(const std::vector<std::string>& calls) {
  for (const auto& call : calls) {
    if (call == "save_state") {
      return "save_state must be called on every process: it writes from the main process itself (each process "
             "adds its own random states), so call it outside `if (is_main_process())`.";
    }
    if (call == "save_model") {
      return "save_model must be called on every process: the main process writes, the others wait for it, so "
             "call it outside `if (is_main_process())`.";
    }
    if (call == "load_state") return "load_state must be called on every process: each one restores its own state.";
  }
  return "Every process must call the same collectives in the same order: look for a collective inside a branch "
         "that only some processes take (`if (is_main_process())`, a loop whose count differs between processes, an "
         "early break or return).";
}

}  // namespace

void Communicator::raise_deadlock(const char* op, const Deadlock& deadlock) {
  const std::string message =
      concat(op, " failed on rank ", rank_, " of ", world_,
             ": deadlock: the processes called different collectives as their collective #", deadlock.sequence,
             ", so none of them can complete: ", deadlock.text, ".\n", deadlock_advice(deadlock.calls),
             "\n(Found by the hang report's bookkeeping instead of waiting for the ", seconds(timeout_),
             " s timeout; ACCELERATE_CPP_HANG_REPORT=0 turns it off.)");
  broken_ = concat(op, " failed: a deadlock (collective #", deadlock.sequence, ")");
  HangReport report;
  report.sequence = deadlock.sequence;
  record_failure(error_file_, rank_, op, false, report, message);
  throw DistributedOperationError(message);
}

void Communicator::fail_deadlock(const char* op, const Deadlock& deadlock, const c10::intrusive_ptr<c10d::Work>& work) {
  // The work never completes and one of Gloo's threads stays blocked in it until Gloo's own timeout; the group's
  // destructor would join that thread, so the group and the work are kept alive (leaked) to let the process exit.
  auto kept_work = work;
  auto kept_group = group_;
  [[maybe_unused]] auto* leaked_work = kept_work.release();
  [[maybe_unused]] auto* leaked_group = kept_group.release();
  raise_deadlock(op, deadlock);
}

void Communicator::fail(const char* op, const std::exception& error) {
  // A peer that found a deadlock and exited makes this rank's wait fail on its closed connection: the deadlock,
  // if this rank has seen it too, is the better explanation.
  if (inspector_ && hang_report_) {
    if (auto deadlock = inspector_->deadlock()) raise_deadlock(op, *deadlock);
  }
  const std::string what = message_of(error);
  const bool timed_out = contains(what, "Timed out") || contains(what, "timed out") || contains(what, "Timeout");
  broken_ = concat(op, " failed: ", what);
  HangReport report;
  if (inspector_ && hang_report_) {
    report = inspector_->report();
    if (!timed_out && report.missing.empty()) {
      // A peer that died closes its connections at once, before its heartbeat has had time to look stale: wait
      // for that evidence, so that the report, and the launcher's blame on another machine, names the lost peer.
      std::this_thread::sleep_for(kStaleEvidenceWait);
      report = inspector_->report();
    }
  } else {
    report.text = "(off: ACCELERATE_CPP_HANG_REPORT=0)";
  }
  const std::string message = concat(
      op, " failed on rank ", rank_, " of ", world_, " (backend ", backend_name_, ", timeout ", seconds(timeout_),
      " s): ", what,
      "\nAnother process probably died or stopped calling collectives (every rank must call the same collectives "
      "in the same order); look for its error above. A slow but healthy step needs a larger "
      "ACCELERATE_CPP_TIMEOUT.\nHang report: rank ",
      rank_, " ", report.text);
  record_failure(error_file_, rank_, op, timed_out, report, message);
  if (timed_out) throw TimeoutError(message);
  throw DistributedOperationError(message);
}

namespace {
constexpr size_t kGatherHistory = 4;
// Above this, round 1 sends headers only: padding a large buffer costs more than the extra round trip.
constexpr int64_t kMaxGatherCapacity = 1 << 20;
}  // namespace

int64_t Communicator::gather_capacity() const {
  int64_t capacity = 0;
  for (auto bytes : recent_gather_bytes_) capacity = std::max(capacity, bytes);
  // Rounded up to 16 bytes (alignment of the next buffer is kept by the header's size).
  capacity = (capacity + 15) / 16 * 16;
  return capacity <= kMaxGatherCapacity ? capacity : 0;
}

void Communicator::record_gather_bytes(int64_t largest) {
  recent_gather_bytes_.push_back(largest);
  if (recent_gather_bytes_.size() > kGatherHistory) recent_gather_bytes_.pop_front();
}

void Communicator::shutdown() {
  if (!group_) return;
  inspector_->stop();  // it writes to the store, which goes away below
  // As torch's destroy_process_group: shut the backends down now. The Reducer keeps the group alive past this
  // point, and an NCCL communicator that is only destroyed at exit gets aborted, with torch's warning.
  try {
    group_->shutdown();
  } catch (const std::exception& e) {
    std::cerr << "accelerate: warning: shutting the process group down on rank " << rank_ << ": " << message_of(e)
              << std::endl;
  }
  group_.reset();
  store_.reset();
}

}  // namespace accelerate::detail
