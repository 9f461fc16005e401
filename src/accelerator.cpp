// Accelerator: each method is a few lines delegating to the state, the DDP wrapper, the optimizer wrapper,
// the data loader or the collectives.
#include <accelerate/accelerator.hpp>

#include <accelerate/error.hpp>
#include <accelerate/memory.hpp>
#include <accelerate/platform.hpp>
#include <accelerate/random.hpp>
#include <accelerate/system_info.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <thread>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>

#include "detail/utilisation.hpp"
#include "detail/trace_range.hpp"
#include "detail/communicator.hpp"
#include "detail/accelerator_parallel.hpp"
#include "detail/checkpointer.hpp"
#include "detail/data_loader_access.hpp"
#include "detail/data_parallel.hpp"
#include "detail/tracker_set.hpp"
#include "detail/triggers.hpp"
#include "detail/optimizer_state.hpp"
#include "detail/out_of_memory.hpp"
#include "detail/sharded_units.hpp"
#include "detail/zero_optimizer.hpp"
#include "detail/model_state.hpp"

namespace accelerate {
namespace {

/// A project folder that cannot be written would fail the first save_state, after the training it was meant to
/// keep (or, without checkpoints, the final save_model): found before the first step instead.
void check_writable(const std::string& folder, int rank) {
  namespace fs = std::filesystem;
  const fs::path probe = fs::path(folder) / (".accelerate-write-test-" + std::to_string(rank));
  std::string problem;
  try {
    fs::create_directories(folder);
    std::ofstream(probe) << "ok";
    if (!fs::exists(probe)) problem = "a file cannot be created there";
    std::error_code ignored;
    fs::remove(probe, ignored);
  } catch (const fs::filesystem_error& e) {
    problem = e.code().message();
  }
  ACCELERATE_CHECK(problem.empty(), ConfigError, "project_dir '", folder, "' cannot be written (", problem,
                   "): checkpoints and logs go there; give a folder this process may create and write (the "
                   "examples' --output_dir).");
}

/// The project folder: the one given, in either spelling (HF has both: `project_dir` and
/// `ProjectConfiguration.project_dir`; given twice, they must agree), checked writable on each machine; else the
/// platform's writable folder (/kaggle/working, a mounted Drive, else the working directory), so the same binary
/// keeps its checkpoints and logs where they survive on each platform.
std::string resolve_project_dir(const AcceleratorOptions& options, const std::string& platform_dir,
                                const ProcessState& state) {
  std::optional<std::string> given;
  for (const std::string& dir : {options.project_dir, options.project.project_dir}) {
    if (dir.empty()) continue;
    ACCELERATE_CHECK(!given || *given == dir, ConfigError, "AcceleratorOptions: project_dir '", options.project_dir,
                     "' and project.project_dir '", options.project.project_dir, "' differ; give one of them.");
    given = dir;
  }
  if (!given) return platform_dir;
  if (state.is_local_main_process()) check_writable(*given, state.process_index());
  return *given;
}

/// An explicit option wins over the environment (as ProcessState read it), which wins over 1.
int resolve_accumulation(const std::optional<int>& option, const EnvironmentSettings& settings) {
  const int steps = option.value_or(settings.gradient_accumulation_steps.value_or(1));
  ACCELERATE_CHECK(steps >= 1, ConfigError, "gradient_accumulation_steps must be >= 1, got ", steps, ".");
  return steps;
}

ProcessStateOptions process_options(const AcceleratorOptions& options) {
  auto process = options.process;
  process.cpu = process.cpu || options.cpu;
  return process;
}

/// Module::to(device) for the tensors that hold weights: one built through init_empty_weights has nothing
/// to copy, and stage 3 gives it its place.
void move_to(torch::nn::Module& model, c10::Device device) {
  at::NoGradGuard no_grad;
  auto move = [&](at::Tensor t) {
    if (!detail::has_no_weights(t) && t.device() != device) t.set_data(t.detach().to(device));
  };
  for (const auto& p : model.parameters()) move(p);
  for (const auto& b : model.buffers()) move(b);
}

void refuse_if_prepared(bool prepared, const char* what) {
  ACCELERATE_CHECK(!prepared, ConfigError, "prepare(", what, "): this ", what,
                   " was already prepared by this Accelerator; prepare each object once and keep what it returns.");
}

}  // namespace

Accelerator::Accelerator(AcceleratorOptions options) : options_(std::move(options)) {
  state_ = std::make_shared<ProcessState>(process_options(options_));
  init();
}

Accelerator::Accelerator(const EnvironmentVariables& env, AcceleratorOptions options) : options_(std::move(options)) {
  state_ = std::make_shared<ProcessState>(env, process_options(options_));
  init();
}

Accelerator::Accelerator(std::shared_ptr<ProcessState> state, AcceleratorOptions options)
    : options_(std::move(options)), state_(std::move(state)) {
  ACCELERATE_CHECK(state_, ConfigError, "Accelerator: the shared ProcessState is null.");
  ACCELERATE_CHECK(!options_.cpu || !state_->device().is_cuda(), ConfigError,
                   "Accelerator: cpu=true, but the shared ProcessState runs on ", state_->device(),
                   "; create the ProcessState with ProcessStateOptions{.cpu = true}.");
  init();
}

void Accelerator::init() {
  const auto& settings = state_->settings();
  requested_precision_ = options_.mixed_precision
                             ? parse_mixed_precision(*options_.mixed_precision, "AcceleratorOptions")
                             : settings.mixed_precision.value_or(MixedPrecision::No);
  precision_ = requested_precision_;
  gradient_state_.set_num_steps(resolve_accumulation(options_.gradient_accumulation_steps, settings));
  gradient_state_.set_sync_with_dataloader(options_.sync_with_dataloader);
  zero_stage_ = options_.zero_stage ? check_zero_stage(*options_.zero_stage, "AcceleratorOptions::zero_stage")
                                    : settings.zero_stage.value_or(0);
  if (zero_stage_ > 0 && !state_->use_distributed()) {
    if (state_->is_main_process()) {
      std::cerr << "accelerate: note: ZeRO stage " << zero_stage_
                << " shards over the processes of the job; with one process there is nothing to shard, so it runs as "
                   "stage 0."
                << std::endl;
    }
    zero_stage_ = 0;
  }
  // A configuration written for a GPU must stay fast on a laptop: fp16 on a CPU is emulated (the example runs 7
  // instead of 50 it/s), so, as HF Accelerate does, a CPU job trains in fp32 unless fp16_on_cpu asks otherwise.
  if (precision_ == MixedPrecision::Fp16 && !state_->device().is_cuda() && !options_.fp16_on_cpu) {
    precision_ = MixedPrecision::No;
    if (state_->is_main_process()) {
      std::cerr << "accelerate: warning: mixed_precision fp16 was asked for, but this job runs on the CPU, where fp16 "
                   "is emulated and several times slower: training in fp32 instead, as HF Accelerate does. bf16 is "
                   "the CPU's mixed precision (--mixed_precision bf16); AcceleratorOptions::fp16_on_cpu = true "
                   "forces fp16."
                << std::endl;
    }
  }
  if (precision_ == MixedPrecision::Fp16) scaler_ = std::make_unique<GradScaler>(options_.grad_scaler);
  // bf16 before compute capability 8.0 (a T4, Kaggle's and Colab's GPU) is emulated, and slower than fp32.
  if (precision_ == MixedPrecision::Bf16 && state_->device().is_cuda() && state_->is_local_main_process()) {
    for (const auto& g : runtime_info().gpus) {
      if (g.index != state_->device().index() || g.major >= 8) continue;
      std::cerr << "accelerate: warning: mixed_precision bf16 on " << g.name << " (compute capability " << g.major
                << "." << g.minor << ") is emulated and slow; fp16 is this GPU's mixed precision "
                << "(--mixed_precision fp16)." << std::endl;
    }
  }
  if (options_.seed) set_seed(*options_.seed);
  ProjectConfiguration project = options_.project;
  project.project_dir = resolve_project_dir(options_, settings.platform.output_dir, *state_);
  checkpointer_ = std::make_unique<detail::Checkpointer>(*state_, std::move(project));
  triggers_ = std::make_unique<detail::Triggers>();
  trackers_ = std::make_unique<detail::TrackerSet>();
  parallel_ = std::make_unique<Parallel>();
  parallel_->strategy = detail::make_sharding_strategy(zero_stage_, options_.fsdp);
}

Accelerator::~Accelerator() = default;

std::string Accelerator::state_report() const {
  std::string out = detail::concat(
      "Distributed environment: ", to_string(distributed_type()),
      "\nBackend: ", state_->backend().empty() ? "none" : state_->backend(), "\nNum processes: ", num_processes(),
      "\nProcess index: ", process_index(), "\nLocal process index: ", local_process_index(),
      "\nMain process: ", is_main_process() ? "yes" : "no", "\nDevice: ", device(),
      "\nMixed precision type: ", to_string(precision_),
      precision_ != requested_precision_ ? " (" + to_string(requested_precision_) + " was asked for: not on the CPU)"
                                         : "",
      "\nGradient accumulation steps: ", gradient_state_.num_steps(), "\nZeRO stage: ", zero_stage_,
      "\nDebug mode: ", detail::communicator_of(*state_) && detail::communicator_of(*state_)->debug() ? "on" : "off",
      "\nLauncher: ", to_string(state_->launcher()), "\nPlatform: ", to_string(state_->settings().platform.platform),
      "\n");
  if (const auto problem = runtime_info().cuda_problem; !problem.empty()) out += "WARNING: " + problem + "\n";
  if (device().is_cuda()) {
    for (const auto& g : runtime_info().gpus) {
      if (g.index != device().index()) continue;
      out += detail::concat("Device name: ", g.name, "\nDevice memory in use: ", format_bytes(g.allocated_memory),
                            " of ", format_bytes(g.total_memory), "\n");
    }
    std::string why;
    if (const auto u = detail::gpu_utilisation(device().index(), why)) {
      out += detail::concat("GPU utilisation (NVML): ", u->gpu_percent, "% compute, ", u->memory_percent,
                            "% memory bandwidth; memory used by all processes: ", format_bytes(u->used_bytes), " of ",
                            format_bytes(u->total_bytes), "\n");
    } else {
      out += "GPU utilisation: unknown (" + why + ")\n";
    }
  } else if (const auto cpu = detail::process_cpu_percent()) {
    out += detail::concat("CPU utilisation: ", static_cast<int>(*cpu + 0.5),
                          "% of one core since this process started (", std::thread::hardware_concurrency(),
                          " logical cores; ", at::get_num_threads(), " LibTorch threads)\n");
  }
  return out;
}

bool Accelerator::optimizer_step_was_skipped() const {
  return std::any_of(optimizers_.begin(), optimizers_.end(), [](const auto& o) { return o.step_was_skipped(); });
}

std::shared_ptr<torch::nn::Module> Accelerator::prepare_model(std::shared_ptr<torch::nn::Module> model,
                                                              std::source_location where) {
  ACCELERATE_CHECK(model, ConfigError, "prepare(model): the model is null.");
  detail::CallScope call(detail::communicator_of(*state_), "prepare", where);
  refuse_if_prepared(std::any_of(prepared_models_.begin(), prepared_models_.end(),
                                 [&](const auto& m) { return m.get() == model.get(); }),
                     "model");
  move_to(*model, state_->device());
  prepared_models_.push_back(model);
  if (state_->use_distributed()) {
    parallel_->models.push_back(std::make_unique<detail::DataParallel>(
        *detail::communicator_of(*state_), *model, options_.ddp, *parallel_->strategy, state_->device()));
  } else {
    for (const auto& p : model->named_parameters()) {
      ACCELERATE_CHECK(!detail::has_no_weights(p.value()), ConfigError, "prepare(model): '", p.key(),
                       "' has no weights (built through init_empty_weights). With one "
                       "process nothing shards the model (ZeRO runs as stage 0): build it with its weights, or give "
                       "them with load_checkpoint_in_model before prepare.");
    }
  }
  return model;
}

AcceleratedOptimizer& Accelerator::prepare(torch::optim::Optimizer& optimizer, std::source_location where) {
  refuse_if_prepared(
      std::any_of(optimizers_.begin(), optimizers_.end(), [&](auto& o) { return &o.optimizer() == &optimizer; }),
      "optimizer");
  detail::CallScope call(detail::communicator_of(*state_), "prepare", where);
  detail::move_optimizer_state(optimizer);
  std::vector<detail::ZeroPartition*> partitions;
  for (auto& m : parallel_->models) partitions.push_back(m->partition());
  detail::ZeroOptimizer* sharded = nullptr;
  if (auto sharding = parallel_->strategy->shard_optimizer(optimizer, partitions, *state_)) {
    sharded = parallel_->sharded_optimizers.emplace_back(std::move(sharding)).get();
  }
  return optimizers_.emplace_back(optimizer, gradient_state_, scaler_.get(), sharded);
}

DataLoader& Accelerator::prepare(DataLoader& loader, std::source_location) {
  std::erase_if(loaders_, [](const auto& l) { return !l.alive(); });
  refuse_if_prepared(std::any_of(loaders_.begin(), loaders_.end(), [&](const auto& l) { return l.refers_to(loader); }),
                     "data loader");
  detail::DataLoaderAccess::prepare(
      loader, *state_, gradient_state_,
      ShardOptions{state_->num_processes(), state_->process_index(), options_.split_batches, options_.even_batches},
      state_->device());
  loaders_.emplace_back(loader, loader.lifetime());
  return loader;
}

AcceleratedScheduler& Accelerator::prepare(LRScheduler& scheduler, std::source_location) {
  refuse_if_prepared(std::any_of(schedulers_.begin(), schedulers_.end(),
                                 [&](auto& s) { return s.alive() && &s.scheduler() == &scheduler; }),
                     "scheduler");
  // HF: the wrapped optimizer whose inner optimizer is the scheduler's, else every prepared optimizer.
  std::vector<AcceleratedOptimizer*> optimizers;
  for (auto& o : optimizers_) {
    if (&o.optimizer() == &scheduler.optimizer()) optimizers.push_back(&o);
  }
  if (optimizers.empty()) {
    for (auto& o : optimizers_) optimizers.push_back(&o);
  }
  return schedulers_.emplace_back(scheduler, std::move(optimizers), gradient_state_,
                                  options_.step_scheduler_with_optimizer, options_.split_batches,
                                  state_->num_processes());
}

void Accelerator::register_for_checkpointing(Checkpointable& object) {
  std::erase_if(custom_objects_, [](const auto& o) { return !o.alive(); });
  custom_objects_.emplace_back(object, object.lifetime());
}

void Accelerator::set_gradient_accumulation_steps(int steps) {
  ACCELERATE_CHECK(steps >= 1, ConfigError, "gradient_accumulation_steps must be >= 1, got ", steps, ".");
  gradient_state_.set_num_steps(steps);
}

void Accelerator::do_sync() {
  if (gradient_state_.sync_with_dataloader() && gradient_state_.end_of_dataloader()) {
    step_ = 0;
    gradient_state_.set_sync_gradients(true);  // the last batch of an epoch always steps
  } else {
    ++step_;
    gradient_state_.set_sync_gradients(step_ % gradient_state_.num_steps() == 0);
  }
}

AccumulateGuard::AccumulateGuard(Accelerator& accelerator) { accelerator.do_sync(); }

NoSyncGuard::NoSyncGuard(bool* require_sync)
    : require_sync_(require_sync), previous_(require_sync ? *require_sync : true) {
  if (require_sync_) *require_sync_ = false;
}
NoSyncGuard::~NoSyncGuard() {
  if (require_sync_) *require_sync_ = previous_;
}

NoSyncGuard Accelerator::no_sync(const std::shared_ptr<torch::nn::Module>& model) {
  for (auto& m : parallel_->models) {
    if (&m->module() == model.get()) return NoSyncGuard(&m->require_sync);
  }
  return NoSyncGuard(nullptr);
}

void Accelerator::backward(const at::Tensor& loss, std::source_location where) {
  ACCELERATE_CHECK(loss.defined() && loss.numel() == 1, ConfigError,
                   "backward: the loss must be a scalar tensor, got shape ",
                   loss.defined() ? loss.sizes() : at::IntArrayRef{}, ". Reduce it first (e.g. loss.mean()).");
  ACCELERATE_CHECK(loss.requires_grad(), ConfigError,
                   "backward: the loss does not require grad (computed under NoGradGuard, or from detached tensors).");
  detail::CallScope call(detail::communicator_of(*state_), "backward", where);
  detail::TraceRange range("accelerate::backward");
  check_autocast_ran(where);
  for (auto& m : parallel_->models) {
    ACCELERATE_CHECK(!m->units() || !m->units()->summoned(), StateError,
                     "backward inside a summon_full_params guard: at ZeRO stage 3 the step would update the shards "
                     "while the guard holds the gathered parameters, which it would then write back over the step "
                     "(FSDP forbids this too). End the guard before training; use it to read, save or sample.");
  }
  // During find_executable_batch_size, a process that ran out of memory meets the others here.
  if (out_of_memory_checks_ && gradient_state_.sync_gradients() && detail::out_of_memory_count(*state_, false) > 0) {
    throw detail::PeerOutOfMemory("backward: another process ran out of memory; this batch size is abandoned.");
  }
  // Dividing by 1 would add an autograd node to every step for nothing.
  at::Tensor scaled = gradient_state_.num_steps() == 1 ? loss : loss / gradient_state_.num_steps();
  // DDP all-reduces the gradients during a sync step's backward, and once rebuilds its buckets (a broadcast) as the
  // second iteration starts: name both for the other ranks' hang reports, so a peer stuck in another collective
  // sees a deadlock instead of waiting for the timeout.
  const bool syncing = gradient_state_.sync_gradients() && !parallel_->models.empty();
  const bool rebuilding =
      std::any_of(parallel_->models.begin(), parallel_->models.end(), [](const auto& m) { return m->rebuilds(); });
  const char* op = !syncing ? "backward (gradient bucket rebuild)" : parallel_->strategy->sync_backward_operation();
  auto run_backward = [&] {
    for (auto& m : parallel_->models) {
      m->prepare_iteration();  // the bucket rebuild's broadcast, once
      if (gradient_state_.sync_gradients() && m->require_sync) m->prepare_for_backward(scaled);
    }
    if (scaler_) scaled = scaler_->scale(scaled);
    scaled.backward();
    for (auto& m : parallel_->models) m->finish_backward();  // ZeRO-2: waits for the reduce-scatters
  };
  // The Reducer's all-reduce fails inside autograd with gloo's or c10d's own exception types, which a program
  // catching accelerate::Error would not catch: the same preamble as every other collective, translating only
  // those (autograd raises a user's errors too).
  if ((syncing || rebuilding) && detail::communicator_of(*state_)) {
    detail::communicator_of(*state_)->run(op, run_backward, detail::Communicator::Translate::CommunicationErrors);
  } else {
    run_backward();
  }
  for (auto& m : parallel_->models) m->sync_buffers();
}

void Accelerator::check_autocast_ran(std::source_location where) {
  // HF patches the prepared model's forward to run under autocast; a C++ module's forward cannot be patched, so a
  // forgotten acc.autocast() would train in fp32 without a word.
  const bool ran = hints_.autocast_regions != hints_.regions_at_backward ||
                   at::autocast::is_autocast_enabled(state_->device().type());
  hints_.regions_at_backward = hints_.autocast_regions;
  if (precision_ == MixedPrecision::No || ran || hints_.autocast_said) return;
  hints_.autocast_said = true;
  if (!state_->is_main_process()) return;
  std::cerr << "accelerate: warning: mixed_precision is " << to_string(precision_)
            << ", but no autocast region ran before this backward (" << where.file_name() << ":" << where.line()
            << "), so the forward pass ran in fp32. Compute the outputs and the loss inside `auto autocast = "
               "acc.autocast();` (HF patches the model's forward; in C++ the block is needed). Said once."
            << std::endl;
}

AutocastGuard Accelerator::autocast() {
  ++hints_.autocast_regions;
  const auto type = state_->device().type();
  switch (precision_) {
    case MixedPrecision::Fp16: return AutocastGuard(type, at::kHalf);
    case MixedPrecision::Bf16: return AutocastGuard(type, at::kBFloat16);
    case MixedPrecision::No: break;
  }
  return AutocastGuard(type, at::autocast::get_autocast_dtype(type), at::autocast::is_autocast_enabled(type));
}

void Accelerator::unscale_gradients() {
  for (auto& o : optimizers_) o.unscale_gradients();
}

namespace {
/// Under ZeRO: this rank's gradient pieces of `parameters`, from every sharded optimizer.
std::vector<at::Tensor> shard_gradients(const std::vector<std::unique_ptr<detail::ZeroOptimizer>>& sharded,
                                        const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> grads;
  for (const auto& o : sharded) {
    auto mine = o->piece_gradients(parameters);
    grads.insert(grads.end(), mine.begin(), mine.end());
  }
  return grads;
}
}  // namespace

double Accelerator::clip_grad_norm_(const std::vector<at::Tensor>& parameters, double max_norm, double norm_type) {
  unscale_gradients();
  if (!parallel_->sharded_optimizers.empty()) {  // each rank holds the gradients of its shard
    return detail::clip_sharded_grad_norm(*state_, shard_gradients(parallel_->sharded_optimizers, parameters), max_norm,
                                          norm_type);
  }
  return torch::nn::utils::clip_grad_norm_(parameters, max_norm, norm_type);
}

void Accelerator::clip_grad_value_(const std::vector<at::Tensor>& parameters, double clip_value) {
  unscale_gradients();
  if (!parallel_->sharded_optimizers.empty()) {
    at::NoGradGuard no_grad;
    for (auto g : shard_gradients(parallel_->sharded_optimizers, parameters)) g.clamp_(-clip_value, clip_value);
    return;
  }
  torch::nn::utils::clip_grad_value_(parameters, clip_value);
}

namespace {
/// On the last batch of a loader, the gathered rows past the real samples are the padding of the last round.
at::Tensor drop_padding(const GradientState& state, const at::Tensor& all) {
  if (!state.end_of_dataloader() || state.remainder() <= 0) return all;
  return all.narrow(0, 0, std::min<int64_t>(state.remainder(), all.size(0)));
}
}  // namespace

void Accelerator::check_metrics_source(std::source_location where) const {
  if (hints_.metrics_said || state_->num_processes() == 1 || gradient_state_.in_dataloader()) return;
  hints_.metrics_said = true;
  if (!state_->is_main_process()) return;
  std::cerr << "accelerate: warning: gather_for_metrics (" << where.file_name() << ":" << where.line()
            << ") runs outside the loop of a prepared data loader. If the batches come from a loader that was not "
               "prepared, every process evaluated the whole dataset and the result holds each sample "
            << state_->num_processes()
            << " times: prepare the evaluation loader (acc.prepare(eval_loader)). After a prepared loader's loop, "
               "the padding of its last batch is not dropped either: gather inside the loop. Said once."
            << std::endl;
}

at::Tensor Accelerator::gather_for_metrics(const at::Tensor& tensor, std::source_location where) const {
  detail::CallScope call(detail::communicator_of(*state_), "gather_for_metrics", where);
  check_metrics_source(where);
  return drop_padding(gradient_state_, gather(tensor));
}

Batch Accelerator::gather_for_metrics(const Batch& batch, std::source_location where) const {
  detail::CallScope call(detail::communicator_of(*state_), "gather_for_metrics", where);
  check_metrics_source(where);
  return apply(gather(batch), [&](const at::Tensor& all) { return drop_padding(gradient_state_, all); });
}

std::pair<at::Tensor, at::Tensor> Accelerator::gather_for_metrics(const at::Tensor& first, const at::Tensor& second,
                                                                  std::source_location where) const {
  auto both = gather_for_metrics(Batch{{"first", first}, {"second", second}}, where);
  return {both.at("first"), both.at("second")};
}

void Accelerator::set_seed(uint64_t seed, bool device_specific) const {
  accelerate::set_seed(*state_, seed, device_specific);
}

FullParametersGuard::FullParametersGuard(std::unique_ptr<detail::Summoned> summoned) : summoned_(std::move(summoned)) {}
FullParametersGuard::~FullParametersGuard() = default;

FullParametersGuard Accelerator::summon_full_params(const std::shared_ptr<torch::nn::Module>& model, bool writeback) {
  auto summoned = std::make_unique<detail::Summoned>(parallel_->units_of(model.get()));
  if (writeback) summoned->keep_changes();
  return FullParametersGuard(std::move(summoned));
}

void Accelerator::free_memory() {
  // Stage 3: the models become ordinary ones again, their parameters gathered whole (prepared anew after this).
  for (auto& m : parallel_->models) {
    if (m->units()) m->units()->release();
  }
  // Users of an object go before it: schedulers hold optimizers, optimizers their sharding, which holds partitions.
  schedulers_.clear();
  optimizers_.clear();
  parallel_->sharded_optimizers.clear();
  parallel_->models.clear();
  prepared_models_.clear();
  loaders_.clear();
  step_ = 0;
  clear_device_cache(device());
}

void Accelerator::end_training(std::source_location where) {
  detail::CallScope call(detail::communicator_of(*state_), "end_training", where);
  trackers_->finish();
  state_->destroy_process_group();
}

}  // namespace accelerate
