// Options of the Accelerator, named after HF Accelerate's arguments and kwargs handlers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <accelerate/optimizer.hpp>
#include <accelerate/process_state.hpp>

namespace accelerate {

/// HF's DistributedDataParallelKwargs (torch DDP's constructor arguments).
struct DdpOptions {
  double bucket_cap_mb = 25;
  bool find_unused_parameters = false;
  bool gradient_as_bucket_view = false;
  /// As torch DDP: while the model is in training mode, its buffers (e.g. BatchNorm's running statistics) are
  /// replaced by rank 0's before every forward, so all ranks keep the same values. torch does it at the start of
  /// forward; without a forward hook in C++ we do it at the end of each Accelerator::backward, so the next forward
  /// starts from rank 0's buffers just the same, and nothing the backward still needs is overwritten.
  bool broadcast_buffers = true;
};

/// ZeRO stage 3's options. Prefetching (HF's FullyShardedDataParallelPlugin forward_prefetch and backward_prefetch
/// BACKWARD_PRE): while a unit runs, the all-gather of the unit after it (forward) or before it (backward) is
/// already under way. Both on by default, as FSDP2's implicit prefetch; off, each gather waits where it is needed.
struct FsdpOptions {
  bool forward_prefetch = true;
  bool backward_prefetch = true;
  /// save_state at stage 3: each process writes its own shards of the model and the optimizer state, in parallel
  /// (model.rank_<r>.safetensors, ...; HF's fsdp_state_dict_type SHARDED_STATE_DICT); false gathers them to the
  /// main process, which writes stage 0's files (FULL_STATE_DICT; it must hold the whole model and optimizer
  /// state). Both load at any world size and stage.
  bool sharded_state_dict = true;
};

/// HF's log_with: one tracker name as HF takes a string (`.log_with = "tensorboard"`), several
/// (`.log_with = {"tensorboard", "jsonl"}`), or "all". A list of names, as make_trackers reads it.
struct LogWith : std::vector<std::string> {
  using std::vector<std::string>::vector;
  LogWith() = default;
  LogWith(std::vector<std::string> names) : std::vector<std::string>(std::move(names)) {}
  LogWith(const char* name) : std::vector<std::string>{std::string(name)} {}
  LogWith(std::string name) : std::vector<std::string>{std::move(name)} {}
};

/// HF's ProjectConfiguration: where checkpoints go and how many are kept.
struct ProjectConfiguration {
  /// Empty: the platform's usual writable folder (detect_platform().output_dir): /kaggle/working on Kaggle, the
  /// mounted Drive on Colab, else the working directory.
  std::string project_dir;
  /// save_state() without a folder writes project_dir/checkpoints/checkpoint_<iteration>.
  bool automatic_checkpoint_naming = false;
  /// Keep at most this many complete automatic checkpoints (the oldest go once a newer one is complete).
  std::optional<int> total_limit;
  /// Number of the next automatic checkpoint; continues after load_state. A run whose folder already holds
  /// checkpoints of an earlier run continues after the highest of them (and says so), so that rotation never
  /// takes the checkpoint just written for the oldest and load_state() finds it.
  int64_t iteration = 0;
  /// Where trackers write (<logging_dir>/<project_name>/...). Empty: project_dir.
  std::string logging_dir;
  /// What Accelerator::resume_from_checkpoint() loads: "" nothing; a checkpoint folder; "latest", the newest
  /// complete automatic checkpoint, or nothing (printing so) while there is none, so that one command line serves
  /// the first run and every run after a restart or a requeue.
  std::string resume_from_checkpoint;
};

/// The Accelerator's arguments, in the order of HF's `Accelerator(...)` (designated initialisers must follow the
/// declaration order, so a port keeps HF's order): split_batches, mixed_precision, gradient_accumulation_steps, cpu,
/// dataloader_config (even_batches), log_with, project_dir, project_config, gradient_accumulation_plugin
/// (sync_with_dataloader), step_scheduler_with_optimizer, kwargs_handlers (ddp, grad_scaler); then our own.
struct AcceleratorOptions {
  /// DataLoaderConfiguration: each global batch is split between the processes instead of each process
  /// taking whole batches.
  bool split_batches = false;
  /// "no", "fp16", "bf16". Unset: ACCELERATE_MIXED_PRECISION (set by launch), else "no". fp16 on a CPU job
  /// trains in fp32 (as HF Accelerate does; fp16 is emulated there and several times slower), with one warning
  /// that says so and points to bf16, the CPU's mixed precision; see fp16_on_cpu.
  std::optional<std::string> mixed_precision;
  /// Unset: ACCELERATE_GRADIENT_ACCUMULATION_STEPS (set by launch), else 1. A value given here wins.
  std::optional<int> gradient_accumulation_steps;
  /// Force CPU (also ACCELERATE_USE_CPU).
  bool cpu = false;
  /// DataLoaderConfiguration: complete the last round from the start so every process gets as many batches.
  bool even_batches = true;
  /// Trackers for init_trackers/log: "tensorboard", "jsonl", "csv", "all" (HF's log_with).
  LogWith log_with;
  /// HF's project_dir argument: the same as project.project_dir (give one of them, or the same folder twice).
  std::string project_dir;
  /// HF's project_config.
  ProjectConfiguration project;
  /// The last batch of a loader always syncs and steps (GradientAccumulationPlugin::sync_with_dataloader).
  bool sync_with_dataloader = true;
  bool step_scheduler_with_optimizer = true;
  /// kwargs_handlers: DistributedDataParallelKwargs and GradScalerKwargs.
  DdpOptions ddp;
  GradScalerOptions grad_scaler;
  // ---- accelerate-cpp's own ----
  /// Run fp16 autocast and a GradScaler on the CPU anyway (LibTorch has the kernels; slow, but it is what a GPU
  /// fp16 run computes, e.g. to test a GPU configuration on a laptop).
  bool fp16_on_cpu = false;
  /// ZeRO (Rajbhandari et al. 2020) on c10d's collectives: 1 shards the optimizer state over the processes (each
  /// steps its shard; the updated parameters are all-gathered), 2 shards the averaged gradients too
  /// (reduce-scattered in buckets during backward). What HF reaches through DeepSpeedPlugin(zero_stage=...) or
  /// FSDP's SHARD_GRAD_OP. 3 shards the parameters of each ShardingUnit too (sharding_unit.hpp; FSDP's
  /// FULL_SHARD, DeepSpeed's stage 3). Unset: ACCELERATE_CPP_ZERO_STAGE (launch --zero_stage), else 0. With one
  /// process it runs as stage 0 (with a note). See docs/training.md "ZeRO".
  std::optional<int> zero_stage;
  FsdpOptions fsdp;
  /// set_seed(seed) at construction.
  std::optional<uint64_t> seed;
  /// Timeout and backend of the process group.
  ProcessStateOptions process;
};

}  // namespace accelerate
