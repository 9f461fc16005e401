#include "detail/stall_inspector.hpp"

#include <accelerate/error.hpp>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <limits>
#include <mutex>
#include <sstream>

namespace accelerate::detail {
namespace {

constexpr auto kPublishInterval = std::chrono::milliseconds(50);
// A store call that has not returned after this long means the store's host is stopped, hung or cut off.
constexpr double kStoreStuckAfter = 2.0;
// After a store call failed, the next waits this long (seconds).
constexpr double kRetryAfterFailure = 5.0;
// How long report() waits for a fresh read of the peers before it uses what it has.
constexpr auto kFreshReadWait = std::chrono::milliseconds(1000);
// Each rank publishes its last few collectives, so that a peer that went on past a mismatched collective (the
// other side of it completed by accident, e.g. a broadcast's root) still shows what it called there.
constexpr size_t kHistory = 8;

double now_s() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string seconds_text(double s) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << s << " s";
  return out.str();
}

struct Status {
  int64_t sequence = 0;
  std::string op = "(none yet)";
  bool inside = false;
  double since = 0;  // wall time of the last enter/leave
  int64_t beat = 0;  // heartbeat: the I/O thread republishes with beat+1 every interval, dirty or not
};

/// One collective of a rank's history, as published: its number, the collective, the program's call.
struct Entry {
  int64_t sequence = 0;
  std::string op, call_name, call;  // call: describe_call's text
};

/// The same on this rank, recorded without allocating (static strings only).
struct LocalEntry {
  int64_t sequence = 0;
  const char* op = nullptr;
  CallSite call;
};

struct Peer {
  std::vector<Entry> history;  // oldest first
  bool read = false;           // a read of its key succeeded at least once
  bool published = false;      // ... and found something
  Status status;
  double read_at = 0;
  double beat_changed_at = 0;  // this rank's clock when the peer's beat was last seen to change (no cross-host
                               // clock comparison: a peer whose beat stands still is stopped, hung or dead)
};

}  // namespace

// Everything the threads touch. The I/O thread co-owns it, so a detached, stuck I/O thread stays safe.
struct StallInspector::Shared {
  c10::intrusive_ptr<c10d::Store> store;
  int rank = 0, world = 1, store_host = 0;
  std::chrono::milliseconds warn_after{0};

  std::mutex mutex;
  std::condition_variable wake;  // stop, refresh requests, and finished reads
  Status status;
  std::array<LocalEntry, kHistory> history{};  // this rank's last collectives, at [sequence % kHistory]
  bool dirty = true, stopping = false, warned = false, io_finished = false;
  uint64_t refresh_requested = 0, refresh_done = 0;  // request counters
  std::vector<Peer> peers;
  double io_since = 0;   // when the store call in flight began; 0 when none
  std::string io_error;  // the last store call's failure, empty after a success

  bool store_stuck(double now) const { return io_since > 0 && now - io_since > kStoreStuckAfter; }

  // ---- I/O thread: the only code that calls the store ----
  template <class F>
  bool store_call(std::unique_lock<std::mutex>& lock, F&& f) {
    io_since = now_s();
    lock.unlock();
    std::string error;
    try {
      f();
    } catch (const std::exception& e) {
      error = e.what();
      if (auto nl = error.find('\n'); nl != std::string::npos) error.resize(nl);
      if (error.size() > 300) error.resize(300);
    }
    lock.lock();
    io_since = 0;
    io_error = error;
    return error.empty();
  }

  const LocalEntry* mine_at(int64_t sequence) const {
    const auto& e = history[static_cast<size_t>(sequence) % kHistory];
    return sequence > 0 && e.sequence == sequence ? &e : nullptr;
  }

  void publish(std::unique_lock<std::mutex>& lock) {
    ++status.beat;
    const Status s = status;
    const auto h = history;
    dirty = false;
    std::ostringstream text;
    text << s.sequence << "\n" << s.op << "\n" << (s.inside ? 1 : 0) << "\n";
    text.precision(17);
    text << s.since << "\n" << s.beat;
    for (int64_t q = std::max<int64_t>(1, s.sequence - static_cast<int64_t>(kHistory) + 1); q <= s.sequence; ++q) {
      const auto& e = h[static_cast<size_t>(q) % kHistory];
      if (e.sequence != q) continue;
      text << "\n"
           << q << "\t" << e.op << "\t" << (e.call.name ? e.call.name : e.op) << "\t" << describe_call(e.call, e.op);
    }
    const auto value = text.str();
    store_call(lock, [&] { store->set(std::to_string(rank), std::vector<uint8_t>(value.begin(), value.end())); });
  }

  void read_peers(std::unique_lock<std::mutex>& lock) {
    const uint64_t request = refresh_requested;
    for (int r = 0; r < world && !stopping; ++r) {
      if (r == rank) continue;
      Peer peer;
      const bool ok = store_call(lock, [&] {
        const auto key = std::to_string(r);
        if (!store->check({key})) return;
        const auto bytes = store->get(key);
        std::istringstream in(std::string(bytes.begin(), bytes.end()));
        int inside = 0;
        in >> peer.status.sequence;
        in.ignore();
        std::getline(in, peer.status.op);
        in >> inside >> peer.status.since >> peer.status.beat;
        peer.status.inside = inside != 0;
        in.ignore();
        for (std::string line; std::getline(in, line);) {
          std::istringstream fields(line);
          Entry e;
          std::string number;
          std::getline(fields, number, '\t');
          std::getline(fields, e.op, '\t');
          std::getline(fields, e.call_name, '\t');
          std::getline(fields, e.call);
          e.sequence = std::atoll(number.c_str());
          peer.history.push_back(std::move(e));
        }
        peer.published = true;
      });
      if (!ok) break;  // the store failed: what was read before stays
      peer.read = true;
      peer.read_at = now_s();
      const Peer& before = peers[r];
      const bool beat_moved = !before.read || before.status.beat != peer.status.beat;
      peer.beat_changed_at = beat_moved ? peer.read_at : before.beat_changed_at;
      peers[r] = peer;
    }
    refresh_done = request;
    wake.notify_all();
  }

  // Heartbeats and reads get rarer in big worlds: each costs the store's host one call per rank.
  double heartbeat_interval() const { return 0.5 + 0.005 * world; }
  double stale_after() const { return 4 * heartbeat_interval(); }

  void run_io() {
    std::unique_lock<std::mutex> lock(mutex);
    double last_read = 0, last_publish = 0, last_failure = 0;
    while (!stopping) {
      wake.wait_for(lock, kPublishInterval);
      if (stopping) break;
      // After a failed call (the store's host died), wait before the next: each failure makes torch log a warning.
      if (!io_error.empty() && now_s() - last_failure < kRetryAfterFailure) {
        refresh_done = refresh_requested;  // a report uses what it has, with the failure named
        wake.notify_all();
        continue;
      }
      if (dirty || now_s() - last_publish > heartbeat_interval()) {
        publish(lock);
        last_publish = now_s();
        if (!io_error.empty()) last_failure = now_s();
      }
      // While this rank waits, refresh the peers now and then, so that a report has recent data even when the
      // store stops answering later; more rarely in big worlds (each read is world_size store calls).
      const double now = now_s();
      const double interval = 2 * heartbeat_interval();
      const bool waiting = status.inside && now - status.since > 1.0;
      if (refresh_requested > refresh_done || (waiting && now - last_read > interval)) {
        read_peers(lock);
        last_read = now_s();
        if (!io_error.empty()) last_failure = now_s();
      }
    }
    io_finished = true;
    wake.notify_all();
  }

  // ---- watcher thread: the stall warning, which must come even when the store hangs ----
  void run_watcher(StallInspector& owner) {
    std::unique_lock<std::mutex> lock(mutex);
    while (!stopping) {
      wake.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping) break;
      if (warn_after.count() > 0 && status.inside && !warned &&
          now_s() - status.since > static_cast<double>(warn_after.count()) / 1000.0) {
        warned = true;
        lock.unlock();
        const auto r = owner.report();
        std::cerr << "accelerate: warning: rank " << rank << " " << r.text << std::endl;
        lock.lock();
      }
    }
  }
};

StallInspector::StallInspector(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                               std::chrono::milliseconds warn_after, int store_host)
    : shared_(std::make_shared<Shared>()) {
  shared_->store = std::move(store);
  shared_->rank = rank;
  shared_->world = world;
  shared_->store_host = store_host;
  shared_->warn_after = warn_after;
  shared_->status.since = now_s();
  shared_->peers.resize(static_cast<size_t>(world));
  io_ = std::thread([s = shared_] { s->run_io(); });
  watcher_ = std::thread([this] { shared_->run_watcher(*this); });
}

StallInspector::~StallInspector() { stop(); }

void StallInspector::stop() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->stopping) return;
    shared_->stopping = true;
  }
  shared_->wake.notify_all();
  if (watcher_.joinable()) watcher_.join();  // never blocks on the store
  std::unique_lock<std::mutex> lock(shared_->mutex);
  const bool finished = shared_->wake.wait_for(lock, std::chrono::seconds(1), [&] { return shared_->io_finished; });
  lock.unlock();
  if (finished)
    io_.join();
  else
    io_.detach();  // stuck in a store call that will never return: it owns its state
}

void StallInspector::enter(const char* op, const CallSite& call) {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  auto& s = shared_->status;
  ++s.sequence;
  s.op = op;
  shared_->history[static_cast<size_t>(s.sequence) % kHistory] = {s.sequence, op, call};
  s.inside = true;
  s.since = now_s();
  shared_->dirty = true;
  shared_->warned = false;
  // No notify: the I/O thread wakes on its own every interval; waking it per collective would cost a context switch.
}

void StallInspector::leave() {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  shared_->status.inside = false;
  shared_->status.since = now_s();
  shared_->dirty = true;
}

int64_t StallInspector::sequence() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  return shared_->status.sequence;
}

namespace {

/// What this rank saw of the store and its peers at one moment.
struct Snapshot {
  Status mine;
  std::vector<Peer> peers;
  double now = 0;
  bool stuck = false;  // a store call has hung for a while
  double stuck_for = 0;
  std::string io_error;  // the last store call failed with this
  bool store_down() const { return stuck || !io_error.empty(); }
};

enum class Verdict { Fine, NotArrived, Unreachable };

/// One peer's line of the report, and whether it holds this rank up.
Verdict describe_peer(std::ostream& out, const Snapshot& snap, const Peer& p, bool hosts_store, double stale_after) {
  const Status& mine = snap.mine;
  if (snap.store_down() && hosts_store) {
    // Its own process serves the store, and the store does not answer: this rank is the one that is gone.
    out << "UNREACHABLE: it hosts the rendezvous store, which "
        << (snap.stuck ? "has not answered for " + seconds_text(snap.stuck_for) +
                             " (the process is stopped, hung, or cut off from the network)"
                       : "refused the connection (" + snap.io_error + ")");
    if (p.published) {
      out << "; its last status, read " << seconds_text(snap.now - p.read_at) << " ago: #" << p.status.sequence << " "
          << p.status.op;
    }
    return Verdict::Unreachable;
  }
  if (!p.read) {
    out << "status unavailable (the rendezvous store "
        << (snap.stuck              ? "has not answered for " + seconds_text(snap.stuck_for)
            : snap.io_error.empty() ? "was not read yet"
                                    : "failed: " + snap.io_error)
        << ")";
    return snap.store_down() ? Verdict::Unreachable : Verdict::Fine;
  }
  const std::string as_of = snap.store_down() ? " [as of " + seconds_text(snap.now - p.read_at) + " ago]" : "";
  const double silent = p.read_at - p.beat_changed_at;
  const Status& s = p.status;
  if (p.published && silent > stale_after && s.sequence >= mine.sequence) {
    // It got as far as this collective, then went silent: its process no longer runs (SIGSTOP, a debugger, a
    // dead host). Waiting longer will not help, so it counts with the ranks that cannot be reached.
    out << "NOT RESPONDING: reached #" << s.sequence << " " << s.op << ", but its heartbeat has not moved for "
        << seconds_text(silent) << " (the process is stopped, frozen or gone)" << as_of;
    return Verdict::Unreachable;
  }
  if (!p.published) {
    out << "nothing published (it never reached a collective, or died first)" << as_of;
    return Verdict::NotArrived;
  }
  const double ago = snap.now - s.since;
  if (s.sequence < mine.sequence) {
    out << "has NOT arrived; last " << (s.inside ? "in" : "finished") << " #" << s.sequence << " " << s.op << " ("
        << (s.inside ? "waiting " : "") << seconds_text(ago) << (s.inside ? "" : " ago") << ")" << as_of;
    return Verdict::NotArrived;
  }
  if (s.sequence == mine.sequence && s.op != mine.op) {
    out << "is in #" << s.sequence << " " << s.op << ": a different collective (the ranks called collectives in "
        << "different orders)" << as_of;
  } else if (s.sequence == mine.sequence) {
    out << (s.inside ? "arrived (waiting " + seconds_text(ago) + ")" : "finished it") << as_of;
  } else {
    out << "is ahead, in #" << s.sequence << " " << s.op << as_of;
  }
  return Verdict::Fine;
}

void list_ranks(std::ostream& out, const std::string& what, const std::vector<int>& ranks) {
  if (ranks.empty()) return;
  out << "\n" << what;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  out << ".";
}

}  // namespace

HangReport StallInspector::report() {
  auto& sh = *shared_;
  Snapshot snap;
  {
    std::unique_lock<std::mutex> lock(sh.mutex);
    if (!sh.stopping && !sh.store_stuck(now_s())) {  // a fresh read, unless the store is known to hang
      const uint64_t request = ++sh.refresh_requested;
      sh.wake.notify_all();
      sh.wake.wait_for(lock, kFreshReadWait,
                       [&] { return sh.refresh_done >= request || sh.stopping || sh.store_stuck(now_s()); });
    }
    snap.mine = sh.status;
    snap.peers = sh.peers;
    snap.now = now_s();
    snap.stuck = sh.store_stuck(snap.now);
    snap.stuck_for = snap.stuck ? snap.now - sh.io_since : 0;
    snap.io_error = sh.io_error;
  }
  HangReport r;
  r.sequence = snap.mine.sequence;
  r.op = snap.mine.op;
  std::ostringstream out;
  out << "has waited " << seconds_text(snap.now - snap.mine.since) << " in collective #" << r.sequence << " (" << r.op
      << "). What each rank last published:";
  std::vector<int> unreachable;
  for (int q = 0; q < sh.world; ++q) {
    out << "\n  rank " << q << ": ";
    if (q == sh.rank) {
      out << "in #" << r.sequence << " " << r.op << " (this rank)";
      continue;
    }
    const auto verdict =
        describe_peer(out, snap, snap.peers[static_cast<size_t>(q)], q == sh.store_host, sh.stale_after());
    if (verdict == Verdict::NotArrived) r.missing.push_back(q);
    if (verdict == Verdict::Unreachable) unreachable.push_back(q);
  }
  list_ranks(out, "Ranks that have not reached #" + std::to_string(r.sequence) + ": ", r.missing);
  list_ranks(out, "Ranks that cannot be reached: ", unreachable);
  r.missing.insert(r.missing.end(), unreachable.begin(), unreachable.end());
  r.text = out.str();
  return r;
}

std::string describe_call(const CallSite& call, const char* op) {
  if (!call.name) return op;
  std::string text = call.name;
  if (call.file && *call.file) {
    const char* base = std::strrchr(call.file, '/');  // the file's name: the message stays short
    text += concat(" (", base ? base + 1 : call.file, ":", call.line, ")");
  }
  if (std::strcmp(call.name, op) != 0) text += concat(", in its ", op);
  return text;
}

std::optional<Deadlock> StallInspector::deadlock() const {
  auto& sh = *shared_;
  std::lock_guard<std::mutex> lock(sh.mutex);
  // The first number at which a peer's collective differs from this rank's (both numbered it).
  int64_t first = std::numeric_limits<int64_t>::max();
  for (const auto& peer : sh.peers) {
    for (const auto& e : peer.history) {
      const auto* mine = sh.mine_at(e.sequence);
      if (mine && e.op != mine->op) first = std::min(first, e.sequence);
    }
  }
  if (first == std::numeric_limits<int64_t>::max()) return std::nullopt;
  Deadlock d;
  d.sequence = first;
  auto add_call = [&](const std::string& name) {
    if (std::find(d.calls.begin(), d.calls.end(), name) == d.calls.end()) d.calls.push_back(name);
  };
  std::ostringstream out;
  for (int q = 0; q < sh.world; ++q) {
    out << (q ? "; " : "") << "rank " << q;
    if (q == sh.rank) {
      const auto* m = sh.mine_at(first);
      out << (sh.status.sequence == first && sh.status.inside ? " is in " : " called ")
          << describe_call(m->call, m->op);
      add_call(m->call.name ? m->call.name : m->op);
      continue;
    }
    const Peer& p = sh.peers[static_cast<size_t>(q)];
    const auto e =
        std::find_if(p.history.begin(), p.history.end(), [&](const Entry& x) { return x.sequence == first; });
    if (e != p.history.end()) {
      out << (p.status.sequence == first && p.status.inside ? " is in " : " called ") << e->call;
      add_call(e->call_name);
    } else if (!p.published) {
      out << ": not known (nothing read from it yet)";
    } else {
      out << (p.status.sequence < first ? " has not reached it yet (last: #" : " is past it (in #") << p.status.sequence
          << " " << p.status.op << ")";
    }
  }
  d.text = out.str();
  return d;
}

}  // namespace accelerate::detail
