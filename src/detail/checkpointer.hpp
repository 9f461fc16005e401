// save_state / load_state's folders: which folder (automatic numbering under <project_dir>/checkpoints, continued
// after an earlier run's), the atomic protocol (rank 0 creates <dir>.tmp; every rank writes its files, fsync'd; all
// agree; rank 0 renames the folder into place and writes COMPLETE last), rotation to total_limit, and the automatic
// choice of the newest complete checkpoint with a fallback to older ones. What goes into a folder is the registry
// of parts (detail/checkpoint_parts.hpp).
#pragma once

#include <accelerate/accelerator_options.hpp>
#include <accelerate/process_state.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "detail/checkpoint_parts.hpp"

namespace accelerate::detail {

/// Every rank reports its error (empty when fine); all ranks throw the same CheckpointError if any failed, so no
/// rank goes on alone. Ranks with the same error share one entry ("ranks 0, 1: ..."; "every rank: ...").
void agree(const ProcessState& state, const std::string& my_error);

/// Runs `f` on every rank, then agree()s on its outcome.
template <class F>
void run_agreed(const ProcessState& state, F&& f) {
  std::string error;
  try {
    f();
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree(state, error);
}

/// A checkpoint_<index> folder.
struct CheckpointFolder {
  int64_t index = 0;
  std::filesystem::path path;
  bool complete = false;  ///< it holds COMPLETE
};

/// The one listing of a checkpoints folder, as this process sees it: every checkpoint_<n> folder by n ascending
/// (a missing root is an empty list). `interrupted`, when given, receives the folders a rotation was deleting
/// when it was stopped (<name>.deleting).
std::vector<CheckpointFolder> list_checkpoint_folders(const std::filesystem::path& root,
                                                      std::vector<std::filesystem::path>* interrupted = nullptr);

/// The checkpoints of one run; owns its ProjectConfiguration, whose `iteration` (the next automatic folder's
/// number, HF's project_configuration.iteration) is run state that save and load advance.
class Checkpointer {
 public:
  /// `project.project_dir` is resolved (never empty).
  Checkpointer(const ProcessState& state, ProjectConfiguration project);

  ProjectConfiguration& project() { return project_; }
  const ProjectConfiguration& project() const { return project_; }
  /// <project_dir>/checkpoints (HF's layout).
  std::filesystem::path folder() const;

  /// save_state's work: `output_dir`, or (empty) the next automatic folder, then rotation to total_limit. Every
  /// rank calls it. Returns the folder written. ConfigError without automatic naming and a folder; CheckpointError
  /// when a rank fails (nothing is marked complete then).
  std::filesystem::path save(const std::string& output_dir, const CheckpointParts& parts, CheckpointWriter writer);

  struct Loaded {
    std::filesystem::path folder;
    int64_t step = 0;  ///< the step to resume at
  };
  /// load_state's work: `input_dir`, or (empty) the newest complete automatic checkpoint, falling back to older
  /// ones that pass the checks. Every rank calls it. CheckpointError naming the folder and the fix otherwise.
  Loaded load(const std::string& input_dir, const CheckpointParts& parts, const LoadContext& context);
  /// resume_from_checkpoint("latest"): the newest, or nullopt (printing so) while there is none.
  std::optional<Loaded> load_latest(const CheckpointParts& parts, const LoadContext& context);
  /// The newest complete automatic checkpoint, as the main process sees it (every rank gets the same answer).
  std::optional<std::filesystem::path> latest() const;

 private:
  /// The complete automatic checkpoints' indices, newest first, as rank 0 sees them (said once: which folders
  /// are skipped as incomplete).
  std::vector<int64_t> complete_checkpoints() const;
  std::optional<std::filesystem::path> newest();
  void continue_numbering();
  void rotate(const std::filesystem::path& written, bool shared);
  Loaded load_from(const std::filesystem::path& dir, bool automatic, const CheckpointParts& parts,
                   const LoadContext& context);

  const ProcessState& state_;
  ProjectConfiguration project_;
  bool numbering_checked_ = false;  // automatic numbering was checked against the folder's contents
  bool loaded_ = false;             // a checkpoint was loaded: this run resumes one
};

}  // namespace accelerate::detail
