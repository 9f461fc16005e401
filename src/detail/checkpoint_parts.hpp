// What a checkpoint holds, as one registry of parts (as torchtitan's checkpoint manager keeps one dict of stateful
// objects): each kind of object (HF's models, optimizers, schedulers, scaler, dataloaders and
// register_for_checkpointing objects) is one CheckpointPart, and saving, verifying, loading and the counts in
// metadata.json are derived from the list. A new kind is one more entry. The files around the parts (metadata,
// random states, checksums) are HF's save_accelerator_state / load_accelerator_state, in checkpoint_files.cpp;
// the folder protocol (partial folder, agreement, COMPLETE) is the Checkpointer's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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

class ShardedUnits;
class ZeroOptimizer;

struct CheckpointWriter;

/// What a part's load may need besides its files.
struct LoadContext {
  int process_index = 0;
  c10::Device device{c10::kCPU};
  /// What the main process should print (a loader's position mapped to another world size).
  std::function<void(const std::string&)> report;
};

/// One kind of object in a checkpoint. Every function gets the checkpoint's folder; errors are CheckpointErrors
/// that name the file.
struct CheckpointPart {
  /// metadata.json's key for the count of these objects ("models", "data_loaders", ...).
  std::string kind;
  /// How many exist now; a checkpoint must hold as many (or, with `on_more_saved`, at least as many).
  size_t count = 0;
  /// Whether the count is in metadata.json and checked at load (not for the fp16 scaler, whose file HF also
  /// treats as optional).
  bool counted = true;
  /// How a user adds one, for the count mismatch's message: "prepared", "registered (register_for_checkpointing)".
  std::string added_by = "prepared";
  /// Set when a checkpoint may hold more of them than exist now (HF restores the first loaders and ignores the
  /// others): the note the main process prints after "<folder> ", given the saved count.
  std::function<std::string(size_t saved)> on_more_saved;
  /// On every rank before the main process saves (a collective: ZeRO's optimizer state is consolidated).
  std::function<void()> gather;
  /// Writes the files (main process only).
  std::function<void(const std::filesystem::path&)> save;
  /// Writes this rank's own files, on every rank in parallel after every `gather` (ZeRO stage 3's shards); unset
  /// when there are none (save_state then needs no folder shared by every machine).
  std::function<void(const std::filesystem::path&, const CheckpointWriter&)> save_own;
  /// Every file `load` will read is there and well-formed, so a damaged checkpoint is refused before anything
  /// is overwritten.
  std::function<void(const std::filesystem::path&)> verify;
  std::function<void(const std::filesystem::path&, const LoadContext&)> load;
};
using CheckpointParts = std::vector<CheckpointPart>;

// The parts of a save_state checkpoint, in HF's order (prepare()/register order within each kind).
/// `units[i]`: model i's ZeRO-3 units (nullptr where its parameters are whole). With `pieces` (FsdpOptions::
/// sharded_state_dict) every rank writes its own shards of such a model (tensor_pieces.hpp); without, the units are
/// gathered one at a time and the `main_process` keeps the whole model to write. Either format loads at any world
/// size and stage, each unit reading only this rank's slices.
CheckpointPart models_part(std::vector<torch::nn::Module*> models, std::vector<ShardedUnits*> units, bool main_process,
                           bool pieces);
/// `sharded[i]`: optimizer i's ZeRO sharding, or nullptr. Its state is saved in the unsharded format's names,
/// by every rank in pieces (`pieces`) or consolidated on the main process (a collective); loaded at any world
/// size and stage, cut to this rank's pieces.
CheckpointPart optimizers_part(std::vector<torch::optim::Optimizer*> optimizers, std::vector<ZeroOptimizer*> sharded,
                               bool pieces);
CheckpointPart schedulers_part(std::vector<LRScheduler*> schedulers);
/// Without fp16 (`scaler` null) the part has nothing to save or load.
CheckpointPart scaler_part(GradScaler* scaler);
CheckpointPart loaders_part(std::vector<DataLoader*> loaders);
CheckpointPart custom_objects_part(std::vector<Checkpointable*> objects);

/// Who writes and what the run has reached.
struct CheckpointWriter {
  int process_index = 0;
  int num_processes = 1;
  c10::Device device{c10::kCPU};
  int64_t step = 0;       ///< micro-steps so far (Accelerator::step())
  int64_t iteration = 0;  ///< ProjectConfiguration::iteration
  MixedPrecision precision = MixedPrecision::No;
  /// The same on every rank, another for each save: files of one save name it, so that files of two are told apart.
  std::string save_id;
};

/// metadata.json as check_checkpoint_files read it.
struct SavedCheckpoint {
  int format_version = 0;
  int world_size = 1;
  int64_t step = 0;
  std::map<std::string, size_t> counts;  ///< per part kind
};

/// Writes this rank's files into `dir` (every rank calls it: parts may gather): the main process writes every
/// part and metadata.json; every rank writes its random states. Files are fsync'd; the caller makes the folder
/// durable and complete. Throws CheckpointError on a failed write.
void save_checkpoint_files(const std::filesystem::path& dir, const CheckpointParts& parts,
                           const CheckpointWriter& writer);

/// metadata.json of `dir`, checked against `parts` (format version, counts of each kind), and every file the load
/// will read opened and checked (and its CRC-32 against checksums.json: all files on the main process, this rank's
/// random states elsewhere), so a damaged checkpoint is refused before anything is overwritten. CheckpointError
/// naming the file and the fix otherwise.
SavedCheckpoint check_checkpoint_files(const std::filesystem::path& dir, const CheckpointParts& parts,
                                       int process_index);

/// Loads `dir`, which check_checkpoint_files accepted as `saved`, into `parts` and this rank's (else rank 0's)
/// random generators; returns the step to resume at. CheckpointError naming the file when one does not fit.
int64_t load_checkpoint_files(const std::filesystem::path& dir, const CheckpointParts& parts,
                              const SavedCheckpoint& saved, const LoadContext& context);

}  // namespace detail
}  // namespace accelerate
