// Platform detection: torch-free, compiled into the library and the CLI (`accelerate-cpp env`).
#include <accelerate/platform.hpp>

#include <filesystem>

namespace accelerate {

std::string to_string(Platform platform) {
  switch (platform) {
    case Platform::Kaggle: return "Kaggle";
    case Platform::Colab: return "Google Colab";
    case Platform::Slurm: return "SLURM";
    case Platform::Kubernetes: return "Kubernetes";
    case Platform::Container: return "container";
    case Platform::Torchrun: return "torchrun";
    case Platform::Mpi: return "MPI";
    case Platform::Local: break;
  }
  return "local";
}

PlatformInfo detect_platform(const EnvironmentVariables& env, const std::function<bool(const std::string&)>& exists) {
  auto has = [&](const char* key) { return env.count(key) > 0; };
  auto path_exists = [&](const std::string& path) {
    if (exists) return exists(path);
    std::error_code ec;
    return std::filesystem::exists(path, ec);
  };
  std::error_code ec;
  const std::filesystem::path current = std::filesystem::current_path(ec);
  const std::string cwd = ec ? std::string(".") : current.native();
  if (has("KAGGLE_KERNEL_RUN_TYPE")) return {Platform::Kaggle, "/kaggle/working"};
  if (has("COLAB_GPU") || has("COLAB_RELEASE_TAG")) {
    // Only Drive survives the end of a Colab session; use it when the user mounted it.
    const std::string drive = "/content/drive/MyDrive";
    return {Platform::Colab, path_exists(drive) ? drive : cwd};
  }
  if (has("SLURM_JOB_ID")) return {Platform::Slurm, cwd};
  if (has("KUBERNETES_SERVICE_HOST")) return {Platform::Kubernetes, cwd};
  // Our launcher sets torchrun's variables too; it is not a platform.
  if ((has("TORCHELASTIC_RUN_ID") || (has("LOCAL_RANK") && has("WORLD_SIZE"))) && !has("ACCELERATE_CPP_LAUNCHED")) {
    return {Platform::Torchrun, cwd};
  }
  if (has("OMPI_COMM_WORLD_SIZE") || has("PMI_SIZE")) return {Platform::Mpi, cwd};
  if (path_exists("/.dockerenv") || path_exists("/run/.containerenv") || has("container")) {
    return {Platform::Container, cwd};
  }
  return {Platform::Local, cwd};
}

}  // namespace accelerate
