// Accelerator: the one object a training loop talks to (HF Accelerate's Accelerator). It owns the process
// state, the gradient state and the mixed-precision policy, and prepares models, optimizers, data loaders and
// schedulers so that the same loop runs on one process, N CPU processes or GPUs.
//
//   accelerate::Accelerator acc;
//   auto [net, opt, dl] = acc.prepare(model, optimizer, loader);  // as README.md's loop, which a test compiles
//   for (auto& batch : dl) {
//     auto step = acc.accumulate(net);
//     auto loss = torch::cross_entropy_loss(net->forward(batch.data), batch.target);
//     acc.backward(loss);
//     opt.step();
//     opt.zero_grad();
//   }
#pragma once

#include <accelerate/guard.hpp>

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <tuple>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include <accelerate/accelerator_options.hpp>
#include <accelerate/checkpointable.hpp>
#include <accelerate/collectives.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/find_batch_size.hpp>
#include <accelerate/gradient_state.hpp>
#include <accelerate/lifetime.hpp>
#include <accelerate/optimizer.hpp>
#include <accelerate/profiler.hpp>
#include <accelerate/precision.hpp>
#include <accelerate/preemption.hpp>
#include <accelerate/process_state.hpp>
#include <accelerate/scheduler.hpp>
#include <accelerate/tracking.hpp>

namespace accelerate {

namespace detail {
class Checkpointer;
struct Triggers;
class TrackerSet;
struct CheckpointPart;
struct LoadContext;
class Summoned;
}  // namespace detail

class Accelerator;

/// A torch::nn::ModuleHolder, or a type derived from one (what TORCH_MODULE(Net) declares).
template <class T>
concept ModuleHolderType = std::is_base_of_v<torch::nn::ModuleHolder<typename T::ContainedType>, T>;

/// RAII of accumulate(): decides whether this micro-step syncs; non-sync micro-steps neither all-reduce
/// gradients nor step the optimizer or scheduler.
class [[nodiscard]] AccumulateGuard : Guard {
 public:
  explicit AccumulateGuard(Accelerator& accelerator);
  ~AccumulateGuard() = default;
};

/// RAII of no_sync(model): backward passes inside accumulate gradients locally without all-reducing them.
class [[nodiscard]] NoSyncGuard : Guard {
 public:
  ~NoSyncGuard();

 private:
  friend class Accelerator;  // made by Accelerator::no_sync only
  /// `require_sync`: the prepared model's flag (null for a model without gradient synchronisation).
  explicit NoSyncGuard(bool* require_sync);
  bool* require_sync_;
  bool previous_;
};

/// RAII of summon_full_params(model): the model's ZeRO-3 units stay gathered while it lives.
class [[nodiscard]] FullParametersGuard : Guard {
 public:
  ~FullParametersGuard();

 private:
  friend class Accelerator;  // made by Accelerator::summon_full_params only
  explicit FullParametersGuard(std::unique_ptr<detail::Summoned> summoned);
  std::unique_ptr<detail::Summoned> summoned_;
};

class Accelerator {
 public:
  /// Joins the process group of this process's launch environment (AcceleratorOptions::process).
  explicit Accelerator(AcceleratorOptions options = {});
  /// The same from an explicit environment instead of this process's (tests, embedding): `env` is all the
  /// ProcessState and the Accelerator read; the process environment is not looked at.
  Accelerator(const EnvironmentVariables& env, AcceleratorOptions options);
  /// Shares an existing process state, e.g. several Accelerators, one after another, in one program: each
  /// ProcessState is one rendezvous, so share it rather than creating a second one.
  Accelerator(std::shared_ptr<ProcessState> state, AcceleratorOptions options = {});
  ~Accelerator();
  Accelerator(const Accelerator&) = delete;
  Accelerator& operator=(const Accelerator&) = delete;

  // ---- state ----
  const ProcessState& state() const { return *state_; }
  GradientState& gradient_state() { return gradient_state_; }
  c10::Device device() const { return state_->device(); }
  int num_processes() const { return state_->num_processes(); }
  int process_index() const { return state_->process_index(); }
  int local_process_index() const { return state_->local_process_index(); }
  bool is_main_process() const { return state_->is_main_process(); }
  bool is_local_main_process() const { return state_->is_local_main_process(); }
  bool is_last_process() const { return state_->is_last_process(); }
  bool use_distributed() const { return state_->use_distributed(); }
  DistributedType distributed_type() const { return state_->distributed_type(); }
  MixedPrecision mixed_precision() const { return precision_; }
  int gradient_accumulation_steps() const { return gradient_state_.num_steps(); }
  /// HF's `accelerator.gradient_accumulation_steps = n` (find_executable_batch_size's keep_global_batch sets it).
  /// ConfigError below 1.
  void set_gradient_accumulation_steps(int steps);
  /// The ZeRO stage in effect: 0 with one process, whatever was asked for (AcceleratorOptions::zero_stage).
  int zero_stage() const { return zero_stage_; }
  bool sync_gradients() const { return gradient_state_.sync_gradients(); }
  bool split_batches() const { return options_.split_batches; }
  bool even_batches() const { return options_.even_batches; }
  /// Any prepared optimizer skipped its last step (fp16 overflow).
  bool optimizer_step_was_skipped() const;
  /// Micro-step counter of gradient accumulation (HF's accelerator.step).
  int64_t step() const { return step_; }
  GradScaler* scaler() { return scaler_.get(); }
  /// This process's view, one "Key: value" per line (HF's state repr plus backend, platform, and on CUDA the
  /// device name and memory in use): what `--debug` prints and what a bug report needs.
  std::string state_report() const;

  // ---- prepare ----
  /// Moves the model to the device and, with several processes, synchronises its gradients (DDP). Returns
  /// the same module, so the loop does not change.
  /// (`where`, here and below: the caller's line, for the deadlock message; see collectives.hpp.)
  std::shared_ptr<torch::nn::Module> prepare_model(std::shared_ptr<torch::nn::Module> model,
                                                   std::source_location where = std::source_location::current());
  /// A module holder comes back as its own type: `Net` (a TORCH_MODULE) for a `Net`.
  template <ModuleHolderType Holder>
  Holder prepare(Holder model, std::source_location where = std::source_location::current()) {
    prepare_model(model.ptr(), where);
    return model;
  }
  template <class M, class = std::enable_if_t<std::is_base_of_v<torch::nn::Module, M>>>
  std::shared_ptr<M> prepare(std::shared_ptr<M> model, std::source_location where = std::source_location::current()) {
    prepare_model(model, where);
    return model;
  }
  AcceleratedOptimizer& prepare(torch::optim::Optimizer& optimizer,
                                std::source_location where = std::source_location::current());
  DataLoader& prepare(DataLoader& loader, std::source_location = {});
  AcceleratedScheduler& prepare(LRScheduler& scheduler, std::source_location = {});
  /// Several at once, returned in order: `auto [model, opt, loader, sched] = acc.prepare(model, opt, loader, sched);`
  /// (A deadlock message names this form's call without its line: a parameter pack cannot be followed by one.)
  template <class A, class B, class... Rest>
  requires(!std::is_same_v<std::remove_cvref_t<B>, std::source_location>) auto prepare(A&& a, B&& b, Rest&&... rest) {
    // Braced initialisation evaluates left to right, so schedulers see the optimizers prepared before them.
    return std::tuple<decltype(prepare(std::forward<A>(a))), decltype(prepare(std::forward<B>(b))),
                      decltype(prepare(std::forward<Rest>(rest)))...>{
        prepare(std::forward<A>(a), std::source_location{}), prepare(std::forward<B>(b), std::source_location{}),
        prepare(std::forward<Rest>(rest), std::source_location{})...};
  }

  // ---- the step ----
  /// loss / gradient_accumulation_steps, scaled under fp16, then backward; on sync steps the gradients are
  /// all-reduced during backward.
  void backward(const at::Tensor& loss, std::source_location where = std::source_location::current());
  AccumulateGuard accumulate() { return AccumulateGuard(*this); }
  template <class M>
  AccumulateGuard accumulate(const M&) {
    return AccumulateGuard(*this);
  }
  NoSyncGuard no_sync(const std::shared_ptr<torch::nn::Module>& model);
  template <class M>
  NoSyncGuard no_sync(const torch::nn::ModuleHolder<M>& model) {
    return no_sync(std::static_pointer_cast<torch::nn::Module>(model.ptr()));
  }
  /// ZeRO stage 3: every unit of prepared `model` gathered on every process while the guard lives (FSDP's
  /// summon_full_params, DeepSpeed's GatheredParameters), e.g. to save, evaluate or generate on the main process
  /// only: without it a unit_forward there would wait for the others' all-gather. Collective: every process calls
  /// it. `writeback` (FSDP's default): each process keeps its part of what was written to the parameters
  /// meanwhile. Each process holds the whole model meanwhile. At stages 0-2 it does nothing.
  FullParametersGuard summon_full_params(const std::shared_ptr<torch::nn::Module>& model, bool writeback = true);
  template <class M>
  FullParametersGuard summon_full_params(const torch::nn::ModuleHolder<M>& model, bool writeback = true) {
    return summon_full_params(std::static_pointer_cast<torch::nn::Module>(model.ptr()), writeback);
  }
  /// Autocast to the mixed-precision dtype on this device (a no-op guard for "no"); the region is the
  /// "accelerate::forward" range of a profiler trace.
  AutocastGuard autocast();
  /// HF's `with accelerator.profile(ProfileKwargs(...)) as prof:`: LibTorch's profiler while the returned Profiler
  /// lives, one trace per process in `kwargs.output_trace_dir` (profiler.hpp). Call prof.step() after each step.
  Profiler profile(ProfileKwargs kwargs = {}) const { return Profiler(*state_, std::move(kwargs)); }
  /// Unscales fp16 gradients once, then clips; returns the total norm. Under ZeRO the norm is the global one over
  /// every process's gradient shard, and the shards are clipped (clip through here, not torch's function: at
  /// stage 2 the parameters' own gradients are released after backward).
  double clip_grad_norm_(const std::vector<at::Tensor>& parameters, double max_norm, double norm_type = 2.0);
  void clip_grad_value_(const std::vector<at::Tensor>& parameters, double clip_value);
  /// Divides fp16 gradients by the scale (once per step).
  void unscale_gradients();
  /// The module itself (C++ modules are not wrapped).
  template <class T>
  T unwrap_model(T model) const {
    return model;
  }

  // ---- collectives and helpers ----
  at::Tensor gather(const at::Tensor& tensor, std::source_location where = std::source_location::current()) const {
    return accelerate::gather(*state_, tensor, where);
  }
  /// gather(), then drops the samples that padded the last global batch (HF's gather_for_metrics).
  at::Tensor gather_for_metrics(const at::Tensor& tensor,
                                std::source_location where = std::source_location::current()) const;
  /// The same for each field of a batch (every field's dim 0 indexes samples).
  Batch gather(const Batch& batch, std::source_location where = std::source_location::current()) const {
    return accelerate::gather(*state_, batch, where);
  }
  Batch gather_for_metrics(const Batch& batch, std::source_location where = std::source_location::current()) const;
  /// HF's `preds, labels = accelerator.gather_for_metrics((preds, labels))`: both gathered (their dim 0 indexes the
  /// same samples; other dims may differ), padding dropped, returned in order: `auto [p, l] = acc.gather_for_metrics(
  /// preds, labels);`.
  std::pair<at::Tensor, at::Tensor> gather_for_metrics(
      const at::Tensor& first, const at::Tensor& second,
      std::source_location where = std::source_location::current()) const;
  /// HF's broadcast_object_list: `objects` on every rank becomes `from_process`'s list. T is c10::IValue or a plain
  /// value (numbers, strings, vectors, string-keyed maps, nlohmann::json; see objects.hpp).
  template <class T>
  void broadcast_object_list(std::vector<T>& objects, int from_process = 0,
                             std::source_location where = std::source_location::current()) const {
    accelerate::broadcast_object_list(*state_, objects, from_process, where);
  }
  Batch reduce(const Batch& batch, const std::string& reduction = "sum",
               std::source_location where = std::source_location::current()) const {
    return accelerate::reduce(*state_, batch, reduction, where);
  }
  Batch pad_across_processes(const Batch& batch, int64_t dim = 0, double pad_index = 0, bool pad_first = false,
                             std::source_location where = std::source_location::current()) const {
    return accelerate::pad_across_processes(*state_, batch, dim, pad_index, pad_first, where);
  }
  /// HF: Accelerator.reduce defaults to "sum".
  at::Tensor reduce(const at::Tensor& tensor, Reduction reduction = Reduction::Sum,
                    std::source_location where = std::source_location::current()) const {
    return accelerate::reduce(*state_, tensor, reduction, where);
  }
  /// HF's `accelerator.reduce(t, "sum")`: "sum", "mean", "none" (sums, as HF), "max".
  at::Tensor reduce(const at::Tensor& tensor, const std::string& reduction,
                    std::source_location where = std::source_location::current()) const {
    return accelerate::reduce(*state_, tensor, reduction, where);
  }
  at::Tensor pad_across_processes(const at::Tensor& tensor, int64_t dim = 0, double pad_index = 0,
                                  bool pad_first = false,
                                  std::source_location where = std::source_location::current()) const {
    return accelerate::pad_across_processes(*state_, tensor, dim, pad_index, pad_first, where);
  }
  void wait_for_everyone(std::source_location where = std::source_location::current()) const {
    accelerate::wait_for_everyone(*state_, where);
  }
  MainProcessFirstGuard main_process_first(std::source_location where = std::source_location::current()) const {
    return accelerate::main_process_first(*state_, where);
  }
  MainProcessFirstGuard local_main_process_first(std::source_location where = std::source_location::current()) const {
    return accelerate::local_main_process_first(*state_, where);
  }
  template <class... Args>
  void print(const Args&... args) const {
    accelerate::print(*state_, args...);
  }
  /// Seeds every generator; with device_specific each process adds its index.
  void set_seed(uint64_t seed, bool device_specific = false) const;
  // ---- checkpoints (docs/checkpoints.md) ----
  /// Writes every prepared model, optimizer, scheduler, data-loader position, the GradScaler and each rank's RNG
  /// state to `output_dir` (or the next automatic checkpoint folder), atomically: a folder either is complete
  /// (it holds COMPLETE) or is ignored. Returns the folder.
  std::string save_state(const std::string& output_dir = "",
                         std::source_location where = std::source_location::current());
  /// Restores what save_state wrote, from `input_dir` or the newest complete automatic checkpoint. Returns it.
  std::string load_state(const std::string& input_dir = "",
                         std::source_location where = std::source_location::current());
  /// Loads ProjectConfiguration::resume_from_checkpoint, if set, once everything is prepared: a folder, or
  /// "latest", the newest complete automatic checkpoint, which starts from scratch (printing so) while there is
  /// none. Returns the folder loaded; nullopt when none was.
  std::optional<std::string> resume_from_checkpoint(std::source_location where = std::source_location::current());
  /// The folder load_state() would take first: the newest complete automatic checkpoint under
  /// <project_dir>/checkpoints as the main process sees it (every rank gets the same answer), or nullopt when
  /// there is none yet (a first run; `--resume_from_checkpoint latest` then starts from scratch).
  std::optional<std::string> latest_checkpoint(std::source_location where = std::source_location::current()) const;
  /// The run's project configuration: the options' one with project_dir resolved (the platform's output folder
  /// when none was given); `iteration` is the next automatic checkpoint's number, advanced by save_state. A
  /// mutable reference, as HF's `accelerator.project_configuration` is writable: setting `iteration` renumbers the
  /// next automatic checkpoint.
  ProjectConfiguration& project_configuration();
  /// Saves `object` with every save_state as custom_checkpoint_<i>.safetensors, restores it in load_state. An
  /// object destroyed afterwards is left out of later checkpoints (i counts the objects that still exist).
  void register_for_checkpointing(Checkpointable& object);
  /// The model's weights as HF writes them (see model_io.hpp), by the main process; all ranks wait for it (after
  /// end_training, HF's order, there is nothing left to wait with: the main process writes, the others return).
  void save_model(const std::shared_ptr<torch::nn::Module>& model, const std::string& dir,
                  int64_t max_shard_size = int64_t{10} << 30,
                  std::source_location where = std::source_location::current());
  template <class M>
  void save_model(const torch::nn::ModuleHolder<M>& model, const std::string& dir,
                  int64_t max_shard_size = int64_t{10} << 30,
                  std::source_location where = std::source_location::current()) {
    save_model(std::static_pointer_cast<torch::nn::Module>(model.ptr()), dir, max_shard_size, where);
  }

  /// HF's free_memory: forgets every prepared model, optimizer, scheduler and data loader (their gradient
  /// synchronisation and ZeRO sharding go with them; a stage-3 model's parameters are gathered whole again,
  /// collectively), resets step(), and frees the device's cached memory. The references prepare() returned (the
  /// AcceleratedOptimizer&, schedulers) die with them: prepare again and use what it returns.
  /// Objects registered for checkpointing stay. Call it before preparing new objects in place of old ones (each
  /// attempt of find_executable_batch_size starts with it).
  void free_memory();

  /// Barrier, then leaves the process group.
  void end_training(std::source_location where = std::source_location::current());

  // ---- triggers and preemption (docs/preemption.md) ----
  /// HF's set_trigger: raises this process's flag; the next check_trigger() is true on every process.
  void set_trigger();
  /// HF's check_trigger: true on every process, at the same call, when any process called set_trigger() since
  /// the last check; the flags are then lowered. One all-reduce of one element (on the CPU).
  bool check_trigger(std::source_location where = std::source_location::current());
  /// Call once per optimizer step (on sync steps): true on every process, at the same step, once any process has
  /// been sent SIGTERM or SIGUSR1, a scheduler's notice that the job is about to be stopped (Kubernetes, SLURM's
  /// --signal, `accelerate-cpp launch` forwarding its own). The loop then saves a checkpoint and exits with
  /// kExitPreempted. The first call installs the signal handlers (until then the signals stop the program as
  /// they always did). The same notice often comes twice (SLURM signals every process of a step, the launcher
  /// forwards its own): a signal within 10 s of the first is ignored, a later one stops a program that does not
  /// check. Cheap: the processes exchange their flags (one small all-gather on the CPU) on the same calls only,
  /// about every 0.25 s of wall time as the main process proposes, so the answer may come a few steps after the
  /// signal, but at the same step everywhere.
  bool check_preemption(std::source_location where = std::source_location::current());

  // ---- trackers (main process only; elsewhere these do nothing) ----
  /// Makes the trackers of AcceleratorOptions::log_with under <logging_dir>/<project_name> and logs `config`
  /// as the run's hyper-parameters (also to trackers added with add_tracker).
  void init_trackers(const std::string& project_name, const LogValues& config = {},
                     const TrackerInitKwargs& init_kwargs = {});
  /// Your own tracker (HF: a GeneralTracker instance in log_with); on other processes it is dropped.
  void add_tracker(std::unique_ptr<Tracker> tracker);
  /// Logs to every tracker; without a step, the number of earlier log calls.
  void log(const LogValues& values, std::optional<int64_t> step = std::nullopt);
  /// The tracker of that name, or nullptr (always nullptr on processes other than the main one).
  Tracker* get_tracker(const std::string& name) const;

 private:
  friend class AccumulateGuard;
  // Turns out_of_memory_checks_ on and off.
  friend void detail::run_batch_size_search(Accelerator&, const std::function<void(int64_t)>&,
                                            const FindBatchSizeOptions&);
  void do_sync();
  void init();
  /// What a checkpoint holds now: the registry of parts, from what is prepared and registered.
  std::vector<detail::CheckpointPart> checkpoint_parts();
  detail::LoadContext load_context() const;
  /// Says once that mixed precision is configured but this backward's forward ran outside autocast.
  void check_autocast_ran(std::source_location where);
  /// Says once that gather_for_metrics runs outside a prepared loader's loop with several processes.
  void check_metrics_source(std::source_location where) const;

  AcceleratorOptions options_;
  std::shared_ptr<ProcessState> state_;
  GradientState gradient_state_;
  MixedPrecision precision_ = MixedPrecision::No;
  MixedPrecision requested_precision_ = MixedPrecision::No;  // what the options/environment asked for
  std::unique_ptr<GradScaler> scaler_;
  std::unique_ptr<detail::TrackerSet> trackers_;  // the trackers and the count of log calls
  int64_t step_ = 0;
  std::unique_ptr<detail::Checkpointer> checkpointer_;
  std::unique_ptr<detail::Triggers> triggers_;  // set_trigger's flag, check_preemption's cadence
  int zero_stage_ = 0;
  bool out_of_memory_checks_ = false;   // a find_executable_batch_size search is running
  struct Parallel;                      // DDP / ZeRO per model and optimizer (src/detail/accelerator_parallel.hpp)
  std::unique_ptr<Parallel> parallel_;  // before optimizers_, which use its shardings
  std::vector<std::shared_ptr<torch::nn::Module>> prepared_models_;
  // Loaders, schedulers and registered objects belong to the user, who may destroy them (an evaluation loader
  // prepared per epoch): the Accelerator never reads one that is gone, and a new one at a freed address prepares.
  std::vector<Watched<DataLoader>> loaders_;
  std::vector<Watched<Checkpointable>> custom_objects_;
  std::deque<AcceleratedOptimizer> optimizers_;
  std::deque<AcceleratedScheduler> schedulers_;  // ones whose LRScheduler is gone stay (references were handed out)
  // Mistakes that train or evaluate silently, each said once: autocast() calls (and their count at the last
  // backward), and whether each hint was given.
  struct Hints {
    int64_t autocast_regions = 0, regions_at_backward = 0;
    bool autocast_said = false, metrics_said = false;
  };
  mutable Hints hints_;
};

}  // namespace accelerate
