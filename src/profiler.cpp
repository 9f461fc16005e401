// The profiler (profiler.hpp): LibTorch's Kineto profiler (torch/csrc/autograd/profiler_kineto.h) driven by a
// torch.profiler-like schedule, one trace file per process.
#include <accelerate/profiler.hpp>

#include <accelerate/error.hpp>
#include <accelerate/process_state.hpp>

#include <filesystem>
#include <iostream>
#include <set>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "detail/error_text.hpp"

namespace accelerate {
using detail::concat;
namespace fs = std::filesystem;
namespace kineto = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

ProfileAction profile_action(const ProfileSchedule& s, int64_t step) {
  if (step < s.skip_first) return ProfileAction::None;
  const int64_t t = step - s.skip_first, cycle = s.wait + s.warmup + s.active;
  if (s.repeat > 0 && t / cycle >= s.repeat) return ProfileAction::None;
  const int64_t at = t % cycle;
  if (at < s.wait) return ProfileAction::None;
  if (at < s.wait + s.warmup) return ProfileAction::Warmup;
  return at == cycle - 1 ? ProfileAction::RecordAndSave : ProfileAction::Record;
}

struct Profiler::Impl {
  ProfileKwargs kwargs;
  int process_index = 0;
  ProfilerConfig config{ProfilerState::KINETO};
  std::set<ActivityType> activities;
  int64_t step = 0;
  enum class Phase { Off, Warming, Recording } phase = Phase::Off;
  int cycles = 0;  // traces ended so far
  std::vector<std::string> traces;

  void enter(ProfileAction action) {
    if (action == ProfileAction::None) return;
    if (phase == Phase::Off) kineto::prepareProfiler(config, activities), phase = Phase::Warming;
    if (action != ProfileAction::Warmup && phase == Phase::Warming) {
      kineto::enableProfiler(config, activities);
      phase = Phase::Recording;
    }
  }

  /// Ends the trace being recorded and writes it (a warm-up without a recording is dropped).
  void finish() {
    if (phase != Phase::Recording) {
      if (phase == Phase::Warming) kineto::disableProfiler();  // Kineto's warm-up ends with nothing kept
      phase = Phase::Off;
      return;
    }
    auto result = kineto::disableProfiler();
    phase = Phase::Off;
    const int cycle = cycles++;
    if (kwargs.output_trace_dir.empty()) return;
    const auto name = concat("profile_", process_index, cycle ? concat("_", cycle) : std::string(), ".json");
    const auto path = (fs::path(kwargs.output_trace_dir) / name).string();
    try {
      fs::create_directories(kwargs.output_trace_dir);
      result->save(path);
      traces.push_back(path);
    } catch (const std::exception& e) {  // a trace is never worth the run: said, and training goes on
      std::cerr << "accelerate: warning: profile: cannot write the trace " << path << ": " << detail::message_of(e)
                << std::endl;
    }
  }
};

Profiler::Profiler(const ProcessState& state, ProfileKwargs kwargs) : impl_(std::make_unique<Impl>()) {
  auto& p = *impl_;
  p.kwargs = std::move(kwargs);
  p.process_index = state.process_index();
  for (const auto& a : p.kwargs.activities) {
    ACCELERATE_CHECK(a == "cpu" || a == "cuda", ConfigError, "ProfileKwargs: unknown activity '", a,
                     "'; use \"cpu\" and/or \"cuda\".");
    p.activities.insert(a == "cpu" ? ActivityType::CPU : ActivityType::CUDA);
  }
  if (const auto& s = p.kwargs.schedule_option) {
    ACCELERATE_CHECK(s->wait >= 0 && s->warmup >= 0 && s->active >= 1 && s->repeat >= 0 && s->skip_first >= 0,
                     ConfigError, "ProfileKwargs::schedule_option: active must be >= 1 and the others >= 0.");
  }
  if (!p.kwargs.output_trace_dir.empty()) {  // a folder that cannot take the traces is said now, not at the trace
    std::error_code ec;
    fs::create_directories(p.kwargs.output_trace_dir, ec);
    ACCELERATE_CHECK(!ec && fs::is_directory(p.kwargs.output_trace_dir), ConfigError,
                     "ProfileKwargs::output_trace_dir: cannot create ", p.kwargs.output_trace_dir, " (",
                     ec ? ec.message() : std::string("not a folder"), "); give a writable folder.");
  }
  ACCELERATE_CHECK(!kineto::isProfilerEnabledInMainThread(), StateError,
                   "profile: a profiler already runs in this process; end it (let its Profiler go) first.");
  p.config = ProfilerConfig(ProfilerState::KINETO, p.kwargs.record_shapes, p.kwargs.profile_memory, p.kwargs.with_stack,
                            p.kwargs.with_flops);
  p.enter(p.kwargs.schedule_option ? profile_action(*p.kwargs.schedule_option, 0) : ProfileAction::Record);
}

Profiler::Profiler(Profiler&&) noexcept = default;

Profiler::~Profiler() {
  if (!impl_) return;  // moved from
  try {
    impl_->finish();
  } catch (const std::exception& e) {
    std::cerr << "accelerate: warning: profile: " << detail::message_of(e) << std::endl;  // never throw here
  }
}

void Profiler::step() {
  auto& p = *impl_;
  if (!p.kwargs.schedule_option) return;  // one trace, until the end
  const auto& s = *p.kwargs.schedule_option;
  if (profile_action(s, p.step) == ProfileAction::RecordAndSave) p.finish();
  p.enter(profile_action(s, ++p.step));
}

const std::vector<std::string>& Profiler::traces() const { return impl_->traces; }

}  // namespace accelerate
