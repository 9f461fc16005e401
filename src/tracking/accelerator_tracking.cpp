// Accelerator's tracker methods: HF wraps them in on_main_process, so only the main process writes.
#include <accelerate/accelerator.hpp>

#include <filesystem>

namespace accelerate {

void Accelerator::init_trackers(const std::string& project_name, const LogValues& config) {
  if (!is_main_process()) return;
  const auto& p = project_configuration();
  const auto root = p.logging_dir.empty() ? p.project_dir : p.logging_dir;
  const auto run_dir = (std::filesystem::path(root) / project_name).string();
  for (auto& t : make_trackers(options_.log_with, run_dir)) trackers_.push_back(std::move(t));
  for (auto& t : trackers_) t->store_init_configuration(config);
}

void Accelerator::add_tracker(std::unique_ptr<Tracker> tracker) {
  if (is_main_process() && tracker) trackers_.push_back(std::move(tracker));
}

void Accelerator::log(const LogValues& values, std::optional<int64_t> step) {
  const int64_t s = step.value_or(log_calls_);
  ++log_calls_;
  for (auto& t : trackers_) t->log(values, s);
}

Tracker* Accelerator::get_tracker(const std::string& name) const {
  for (const auto& t : trackers_) {
    if (t->name() == name) return t.get();
  }
  return nullptr;
}

}  // namespace accelerate
