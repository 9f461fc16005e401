// Both examples' --resume_from_checkpoint: a checkpoint folder, or "latest", which starts from scratch (and says so)
// while the project has no complete checkpoint yet. So one command line serves the first run and every run after a
// restart (accelerate-cpp launch --max_restarts, a requeued SLURM job).
#pragma once

#include <accelerate/accelerate.hpp>

#include <optional>
#include <string>

namespace examples {

/// Loads `from` ("" does nothing); returns the folder it loaded, or nullopt when it did not load one.
inline std::optional<std::string> resume(accelerate::Accelerator& acc, const std::string& from) {
  if (from.empty()) return std::nullopt;
  if (from == "latest" && !acc.latest_checkpoint()) {
    acc.print("no complete checkpoint in", acc.project_configuration().project_dir + "/checkpoints",
              "yet: starting from scratch");
    return std::nullopt;
  }
  return acc.load_state(from == "latest" ? "" : from);
}

}  // namespace examples
