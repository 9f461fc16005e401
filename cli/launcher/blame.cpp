#include "launcher/blame.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace accelerate::launcher {

std::optional<CollectiveFailure> read_collective_failure(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(in);
    CollectiveFailure f;
    f.error = j.at("error").get<std::string>();
    f.operation = j.at("operation").get<std::string>();
    f.collective = j.at("collective").get<int64_t>();
    f.missing_ranks = j.at("missing_ranks").get<std::vector<int>>();
    return f;
  } catch (const std::exception&) {
    return std::nullopt;  // a worker killed mid-write, or a file that is not ours: no evidence
  }
}

namespace {

/// "rank 0 timed out in collective #3 (reduce) waiting for it", from the earliest collective failure that was
/// waiting for `rank` (any rank when `rank` < 0); `blamed` receives the rank.
std::optional<std::string> waited_for(const std::vector<const WorkerOutcome*>& by_order, int rank, int& blamed) {
  for (const auto* w : by_order) {
    if (!w->collective) continue;
    for (int missing : w->collective->missing_ranks) {
      if (missing == w->rank || (rank >= 0 && missing != rank)) continue;
      blamed = missing;
      return "rank " + std::to_string(w->rank) + " " +
             (w->collective->error == "TimeoutError" ? "timed out" : "failed") + " in collective #" +
             std::to_string(w->collective->collective) + " (" + w->collective->operation + ") waiting for it";
    }
  }
  return std::nullopt;
}

}  // namespace

Blame blame(const std::vector<WorkerOutcome>& workers) {
  Blame b;
  std::vector<const WorkerOutcome*> by_order;  // the failures, earliest first
  for (const auto& w : workers) {
    if (w.failed) by_order.push_back(&w);
  }
  if (by_order.empty()) return b;
  std::sort(by_order.begin(), by_order.end(),
            [](const auto* a, const auto* c) { return a->failure_order < c->failure_order; });
  const WorkerOutcome* first = by_order.front();
  b.first_failure = static_cast<int>(first - workers.data());
  for (const auto& w : workers) {  // rule 0
    if (!w.frozen) continue;
    b.rank = w.rank;
    b.unresponsive = true;
    int ignored = -1;
    b.reason = waited_for(by_order, w.rank, ignored)
                   .value_or("it was stopped (SIGSTOP, or held by a debugger) when rank " +
                             std::to_string(first->rank) + " failed");
    return b;
  }
  for (const auto* w : by_order) {  // rule 1
    if (!w->collective) {
      b.rank = w->rank;
      return b;
    }
  }
  if (auto reason = waited_for(by_order, -1, b.rank)) {  // rule 2
    b.unresponsive = true;
    b.reason = *reason;
    return b;
  }
  b.rank = first->rank;  // rule 3
  return b;
}

}  // namespace accelerate::launcher

namespace accelerate::launcher {

ErrorFiles::ErrorFiles() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/accelerate-cpp-launch-XXXXXX";
  if (::mkdtemp(pattern.data())) dir_ = pattern;
}

ErrorFiles::~ErrorFiles() {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string ErrorFiles::path_for(int rank) const {
  return dir_.empty() ? "" : dir_ + "/rank" + std::to_string(rank) + ".json";
}

}  // namespace accelerate::launcher
