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

Blame blame(const std::vector<WorkerOutcome>& workers) {
  Blame b;
  const WorkerOutcome* first = nullptr;
  const WorkerOutcome* first_independent = nullptr;
  for (const auto& w : workers) {
    if (!w.failed) continue;
    if (!first || w.failure_order < first->failure_order) first = &w;
    if (!w.collective && (!first_independent || w.failure_order < first_independent->failure_order)) {
      first_independent = &w;
    }
  }
  if (!first) return b;
  b.first_failure = static_cast<int>(first - workers.data());
  if (first_independent) {
    b.rank = first_independent->rank;
    return b;
  }
  // Every failure was a collective failing: blame whom the earliest one was waiting for.
  std::vector<const WorkerOutcome*> by_order;
  for (const auto& w : workers) {
    if (w.failed) by_order.push_back(&w);
  }
  std::sort(by_order.begin(), by_order.end(),
            [](const auto* a, const auto* c) { return a->failure_order < c->failure_order; });
  for (const auto* w : by_order) {
    for (int missing : w->collective->missing_ranks) {
      if (missing == w->rank) continue;
      b.rank = missing;
      b.unresponsive = true;
      b.reason = "rank " + std::to_string(w->rank) + " " +
                 (w->collective->error == "TimeoutError" ? "timed out" : "failed") + " in collective #" +
                 std::to_string(w->collective->collective) + " (" + w->collective->operation + ") waiting for it";
      return b;
    }
  }
  b.rank = first->rank;
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
