// HF's save_accelerator_state / load_accelerator_state: the files of one checkpoint folder, from explicit inputs.
// The Accelerator gathers what to save; the folder protocol (partial folder, agreement, COMPLETE) and the choice
// of folder stay in checkpointing.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include <accelerate/mixed_precision.hpp>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace accelerate {
class Checkpointable;
class DataLoader;
class GradScaler;
class LRScheduler;

namespace detail {
class ZeroOptimizer;

/// What a checkpoint holds, in prepare()/register order (HF's models, optimizers, schedulers, dataloaders,
/// scaler; custom objects are HF's register_for_checkpointing).
struct CheckpointContents {
  std::vector<torch::nn::Module*> models;
  std::vector<torch::optim::Optimizer*> optimizers;
  /// Per optimizer, its ZeRO sharding (nullptr when unsharded): its state is consolidated to the unsharded format
  /// on save (a collective) and cut to this rank's pieces on load.
  std::vector<ZeroOptimizer*> sharded;
  std::vector<LRScheduler*> schedulers;
  std::vector<DataLoader*> loaders;
  std::vector<Checkpointable*> custom_objects;
  GradScaler* scaler = nullptr;  ///< null without fp16
};

/// Who writes and what the run has reached.
struct CheckpointWriter {
  int process_index = 0;
  int num_processes = 1;
  c10::Device device{c10::kCPU};
  int64_t step = 0;       ///< micro-steps so far (Accelerator::step())
  int64_t iteration = 0;  ///< ProjectConfiguration::iteration
  MixedPrecision precision = MixedPrecision::No;
};

/// Writes this rank's files into `dir` (every rank calls it: sharded optimizer state is gathered): the main process
/// writes models, optimizers, schedulers, loader positions, custom objects, the scaler and metadata.json; every rank
/// writes its random states. Files are fsync'd; the caller makes the folder durable and complete. Throws
/// CheckpointError on a failed write.
void save_accelerator_state(const std::filesystem::path& dir, const CheckpointContents& contents,
                            const CheckpointWriter& writer);

/// metadata.json of `dir`, checked against `contents` (format version, counts of each kind), and every file the
/// load will read opened and checked (and its CRC-32 against checksums.json: all files on the main process, this
/// rank's random states elsewhere), so a damaged checkpoint is refused before anything is overwritten. Returns
/// the world size the checkpoint was saved with. CheckpointError naming the file and the fix otherwise.
int check_checkpoint_metadata(const std::filesystem::path& dir, const CheckpointContents& contents, int process_index);

/// Loads `dir` into `contents` and this rank's (else rank 0's) random generators; returns the step to resume at.
/// `report` receives what the main process should print (a loader's position mapped to another world size).
/// CheckpointError naming the file when one is missing, damaged or does not fit.
int64_t load_accelerator_state(const std::filesystem::path& dir, const CheckpointContents& contents, int process_index,
                               c10::Device device, int saved_world_size,
                               const std::function<void(const std::string&)>& report);

}  // namespace detail
}  // namespace accelerate
