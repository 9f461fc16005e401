// Accelerator's tracker methods: HF wraps them in on_main_process, so only the main process writes. The state
// (the trackers, the count of log calls) is the TrackerSet's.
#include <accelerate/accelerator.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "detail/tracker_set.hpp"

namespace accelerate {

namespace detail {

void TrackerSet::init(const std::vector<std::string>& log_with, const std::string& run_dir, const std::string& project,
                      const LogValues& config, const TrackerInitKwargs& init_kwargs) {
  for (auto& t : make_trackers(log_with, run_dir)) trackers_.push_back(std::move(t));
  auto wants = [&](const char* name) { return std::find(log_with.begin(), log_with.end(), name) != log_with.end(); };
  auto kwargs = [&](const char* name) {
    const auto found = init_kwargs.find(name);
    return found == init_kwargs.end() ? std::map<std::string, std::string>{} : found->second;
  };
  if (wants("wandb")) trackers_.push_back(make_wandb_tracker(project, config, kwargs("wandb")));
  if (wants("mlflow")) trackers_.push_back(make_mlflow_tracker(project, kwargs("mlflow")));
  for (auto& t : trackers_) t->store_init_configuration(config);
}

void TrackerSet::add(std::unique_ptr<Tracker> tracker) {
  if (tracker) trackers_.push_back(std::move(tracker));
}

void TrackerSet::log(const LogValues& values, std::optional<int64_t> step) {
  const int64_t s = step.value_or(log_calls_);
  ++log_calls_;
  for (auto& t : trackers_) {
    try {
      t->log(values, s);
    } catch (const std::exception& e) {
      if (std::find(failed_.begin(), failed_.end(), t->name()) != failed_.end()) continue;
      failed_.push_back(t->name());
      std::cerr << "accelerate: warning: tracker " << t->name() << " failed to log (" << e.what()
                << "); training and the other trackers go on." << std::endl;
    }
  }
}

Tracker* TrackerSet::get(const std::string& name) const {
  for (const auto& t : trackers_) {
    if (t->name() == name) return t.get();
  }
  return nullptr;
}

void TrackerSet::finish() {
  for (auto& t : trackers_) t->finish();
  trackers_.clear();
}

}  // namespace detail

void Accelerator::init_trackers(const std::string& project_name, const LogValues& config,
                                const TrackerInitKwargs& init_kwargs) {
  if (!is_main_process()) return;
  const auto& p = project_configuration();
  const auto root = p.logging_dir.empty() ? p.project_dir : p.logging_dir;
  trackers_->init(options_.log_with, (std::filesystem::path(root) / project_name).string(), project_name, config,
                  init_kwargs);
}

void Accelerator::add_tracker(std::unique_ptr<Tracker> tracker) {
  if (is_main_process()) trackers_->add(std::move(tracker));
}

void Accelerator::log(const LogValues& values, std::optional<int64_t> step) { trackers_->log(values, step); }

Tracker* Accelerator::get_tracker(const std::string& name) const { return trackers_->get(name); }

}  // namespace accelerate
