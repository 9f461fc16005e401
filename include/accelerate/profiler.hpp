// The profiler (HF's ProfileKwargs and `with accelerator.profile() as prof:`): LibTorch's Kineto profiler, one
// Chrome / Perfetto trace per process (chrome://tracing, ui.perfetto.dev). Besides LibTorch's operators and c10d's
// collectives, the trace shows the library's own phases as named ranges: "accelerate::forward" (an autocast()
// region), "accelerate::backward", "accelerate::optimizer_step", "accelerate::next_batch" (the wait for the
// loader), and ZeRO's "accelerate::reduce_scatter" and "accelerate::all_gather". The ranges cost a check of a
// thread-local flag while no profiler runs (bench/README.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace accelerate {

class ProcessState;

/// torch.profiler.schedule: after `skip_first` steps, cycles of `wait` steps without the profiler, `warmup`
/// steps with it running but nothing kept, and `active` steps recorded into one trace; `repeat` cycles (0: until
/// the profiler ends).
struct ProfileSchedule {
  int wait = 0;
  int warmup = 0;
  int active = 1;
  int repeat = 0;
  int skip_first = 0;
};

/// HF's ProfileKwargs (the subset LibTorch's C++ profiler offers: no with_modules).
struct ProfileKwargs {
  std::vector<std::string> activities = {"cpu"};  ///< "cpu" and/or "cuda"
  /// None: everything from profile() until the Profiler ends is one trace.
  std::optional<ProfileSchedule> schedule_option;
  bool record_shapes = false;
  bool profile_memory = false;
  bool with_stack = false;
  bool with_flops = false;
  /// Where each process writes profile_<process_index>.json (the next cycles profile_<process_index>_<cycle>.json),
  /// created if needed; empty: nothing is written (traces() stays empty).
  std::string output_trace_dir;
};

/// What the schedule does at a step, from step 0 on (exposed for tests).
enum class ProfileAction { None, Warmup, Record, RecordAndSave };
ProfileAction profile_action(const ProfileSchedule& schedule, int64_t step);

/// RAII: profiling while alive (Accelerator::profile). Call step() after each training step, as HF's prof.step().
/// Move-only; one at a time per process (LibTorch's profiler is global). Errors: ConfigError for an unknown
/// activity, a bad schedule or an output folder that cannot be created, StateError when another profiler runs; a
/// trace that cannot be written later is a warning (training goes on).
class [[nodiscard]] Profiler {
 public:
  Profiler(const ProcessState& state, ProfileKwargs kwargs);
  /// Ends a trace being recorded and writes it.
  ~Profiler();
  Profiler(Profiler&&) noexcept;
  Profiler& operator=(Profiler&&) = delete;
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  /// One training step done: advances the schedule (starts, ends and writes traces as it says).
  void step();
  /// The files written so far.
  const std::vector<std::string>& traces() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace accelerate
