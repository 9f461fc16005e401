// Internal: the Accelerator's trackers and the step its log() calls default to (HF's `accelerator.trackers` and
// the count of log calls), owned in one place; only the main process has any.
#pragma once

#include <accelerate/tracking.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace accelerate::detail {

class TrackerSet {
 public:
  /// The trackers of `log_with` under `run_dir` (W&B's run named `project` with its `init_kwargs`), then `config`
  /// to every tracker (those added before too).
  void init(const std::vector<std::string>& log_with, const std::string& run_dir, const std::string& project,
            const LogValues& config, const TrackerInitKwargs& init_kwargs);
  void add(std::unique_ptr<Tracker> tracker);
  /// To every tracker at `step`, or without one at the number of earlier log calls. A tracker that throws is
  /// warned about once and the others go on: a tracker never stops training.
  void log(const LogValues& values, std::optional<int64_t> step);
  /// The tracker of that name, or nullptr.
  Tracker* get(const std::string& name) const;
  /// Each tracker's finish() (flush, close), then none is left.
  void finish();

 private:
  std::vector<std::unique_ptr<Tracker>> trackers_;
  int64_t log_calls_ = 0;
  std::vector<std::string> failed_;  // trackers whose failure was said
};

}  // namespace accelerate::detail
