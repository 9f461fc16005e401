// Where this process runs (Kaggle, Colab, SLURM, Kubernetes, a container, ...) and where it should write by
// default, so the same binary saves its checkpoints and logs in the right place everywhere.
#pragma once

#include <functional>
#include <string>

#include <accelerate/environment.hpp>

namespace accelerate {

enum class Platform { Local, Kaggle, Colab, Slurm, Kubernetes, Container, Torchrun, Mpi };

std::string to_string(Platform platform);

struct PlatformInfo {
  Platform platform = Platform::Local;
  /// The platform's usual writable folder: /kaggle/working on Kaggle, the mounted Drive folder on Colab when it
  /// is there, else the working directory. The default ProjectConfiguration::project_dir.
  std::string output_dir;
};

/// Decides from the environment (and, for Colab's Drive and containers, from a few well-known paths; `exists`
/// is injectable so tests need no such paths). Order: Kaggle, Colab, SLURM, Kubernetes, torchrun, MPI, container,
/// local: the most specific first.
PlatformInfo detect_platform(const EnvironmentVariables& env = current_environment(),
                             const std::function<bool(const std::string&)>& exists = {});

}  // namespace accelerate
