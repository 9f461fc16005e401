#include "detail/stall_inspector.hpp"

#include <accelerate/error.hpp>

#include <iostream>
#include <sstream>

namespace accelerate::detail {
namespace {

constexpr auto kPublishInterval = std::chrono::milliseconds(50);

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << s << " s";
  return out.str();
}

}  // namespace

StallInspector::StallInspector(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                               std::chrono::milliseconds warn_after)
    : store_(std::move(store)), rank_(rank), world_(world), warn_after_(warn_after) {
  status_.since = now_s();
  dirty_ = true;
  thread_ = std::thread([this] { run(); });
}

StallInspector::~StallInspector() { stop(); }

void StallInspector::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StallInspector::enter(const char* op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++status_.sequence;
    status_.op = op;
    status_.inside = true;
    status_.since = now_s();
    dirty_ = true;
    warned_ = false;
  }
  // No notify: the thread wakes on its own every interval; waking it per collective would cost a context switch.
}

void StallInspector::leave() {
  std::lock_guard<std::mutex> lock(mutex_);
  status_.inside = false;
  status_.since = now_s();
  dirty_ = true;
}

int64_t StallInspector::sequence() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_.sequence;
}

void StallInspector::publish(const Status& s) {
  std::ostringstream text;
  text << s.sequence << "\n" << s.op << "\n" << (s.inside ? 1 : 0) << "\n";
  text.precision(17);
  text << s.since;
  const auto value = text.str();
  try {
    store_->set(std::to_string(rank_), std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception&) {
    // The store host is gone (rank 0 died): the collective itself will report that.
  }
}

void StallInspector::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kPublishInterval, [this] { return stopping_; });
    if (stopping_) break;
    if (dirty_) {
      const Status s = status_;
      dirty_ = false;
      lock.unlock();
      publish(s);
      lock.lock();
    }
    if (warn_after_.count() > 0 && status_.inside && !warned_ &&
        now_s() - status_.since > static_cast<double>(warn_after_.count()) / 1000.0) {
      warned_ = true;
      lock.unlock();
      std::cerr << "accelerate: warning: rank " << rank_ << " " << report() << std::endl;
      lock.lock();
    }
  }
}

std::string StallInspector::report() {
  Status mine;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    mine = status_;
  }
  const double now = now_s();
  std::ostringstream out;
  out << "has waited " << seconds_text(now - mine.since) << " in collective #" << mine.sequence << " (" << mine.op
      << "). What each rank last published:";
  std::string missing;
  for (int r = 0; r < world_; ++r) {
    out << "\n  rank " << r << ": ";
    if (r == rank_) {
      out << "in #" << mine.sequence << " " << mine.op << " (this rank)";
      continue;
    }
    try {
      const auto key = std::to_string(r);
      if (!store_->check({key})) {
        out << "nothing published (it never reached a collective, or died first)";
        missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        continue;
      }
      const auto bytes = store_->get(key);
      std::istringstream in(std::string(bytes.begin(), bytes.end()));
      Status s;
      int inside = 0;
      in >> s.sequence;
      in.ignore();
      std::getline(in, s.op);
      in >> inside >> s.since;
      const double ago = now - s.since;
      if (s.sequence < mine.sequence) {
        missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        out << "has NOT arrived; last " << (inside ? "in" : "finished") << " #" << s.sequence << " " << s.op << " ("
            << (inside ? "waiting " : "") << seconds_text(ago) << (inside ? "" : " ago") << ")";
      } else if (s.sequence == mine.sequence && s.op != mine.op) {
        out << "is in #" << s.sequence << " " << s.op << ": a different collective (the ranks called collectives in "
            << "different orders)";
      } else if (s.sequence == mine.sequence) {
        out << (inside ? "arrived (waiting " + seconds_text(ago) + ")" : "finished it");
      } else {
        out << "is ahead, in #" << s.sequence << " " << s.op;
      }
    } catch (const std::exception& e) {
      out << "status unavailable (the rendezvous store is unreachable: " << e.what() << ")";
    }
  }
  if (!missing.empty()) out << "\nRanks that have not reached #" << mine.sequence << ": " << missing << ".";
  return out.str();
}

}  // namespace accelerate::detail
