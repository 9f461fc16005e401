// Both examples' --resume_from_checkpoint: a checkpoint folder, or "latest", which starts from scratch (and says so)
// while the project has no complete checkpoint yet. So one command line serves the first run and every run after a
// restart (accelerate-cpp launch --max_restarts, a requeued SLURM job).
#pragma once

#include <accelerate/accelerate.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace examples {

/// Loads `from` ("" does nothing); returns the folder it loaded, or nullopt when it did not load one.
inline std::optional<std::string> resume(accelerate::Accelerator& acc, const std::string& from) {
  if (from.empty()) return std::nullopt;
  if (from == "latest") {
    // The main process's view decides for every rank (machines without a shared folder must agree).
    const auto root = std::filesystem::path(acc.project_configuration().project_dir) / "checkpoints";
    std::vector<c10::IValue> found{c10::IValue(false)};
    if (acc.is_main_process() && std::filesystem::is_directory(root)) {
      for (const auto& entry : std::filesystem::directory_iterator(root)) {
        if (std::filesystem::exists(entry.path() / "COMPLETE")) found[0] = c10::IValue(true);
      }
    }
    accelerate::broadcast_object_list(acc.state(), found, 0);
    if (!found[0].toBool()) {
      acc.print("no complete checkpoint in", root.string(), "yet: starting from scratch");
      return std::nullopt;
    }
  }
  return acc.load_state(from == "latest" ? "" : from);
}

}  // namespace examples
