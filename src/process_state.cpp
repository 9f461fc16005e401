// ProcessState: environment detection, device choice, backend choice and the process group's lifetime.
#include <accelerate/process_state.hpp>

#include <accelerate/error.hpp>

#include <cstdio>
#include <torch/cuda.h>

#include "detail/communicator.hpp"

namespace accelerate {
namespace {

std::chrono::milliseconds resolve_timeout(const EnvironmentVariables& env, const ProcessStateOptions& options) {
  if (options.timeout) {
    ACCELERATE_CHECK(options.timeout->count() > 0, ConfigError, "ProcessStateOptions::timeout must be positive, got ",
                     options.timeout->count(), " ms.");
    return *options.timeout;
  }
  auto it = env.find("ACCELERATE_CPP_TIMEOUT");
  if (it == env.end() || it->second.empty()) return kDefaultTimeout;
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(it->second, &used);
    if (used != it->second.size()) value = -1;
  } catch (const std::exception&) {
    value = -1;
  }
  ACCELERATE_CHECK(value > 0, ConfigError, "ACCELERATE_CPP_TIMEOUT='", it->second,
                   "' is not a positive number of seconds (e.g. ACCELERATE_CPP_TIMEOUT=600).");
  return std::chrono::milliseconds(static_cast<int64_t>(value * 1000));
}

bool env_flag(const EnvironmentVariables& env, const char* key) {
  auto it = env.find(key);
  return it != env.end() && !it->second.empty() && parse_bool(it->second, key);
}

}  // namespace

std::string to_string(DistributedType type) {
  switch (type) {
    case DistributedType::No: return "NO";
    case DistributedType::MultiCpu: return "MULTI_CPU";
    case DistributedType::MultiGpu: return "MULTI_GPU";
  }
  return "UNKNOWN";
}

ProcessState::ProcessState(ProcessStateOptions options) : ProcessState(current_environment(), std::move(options)) {}

ProcessState::ProcessState(const EnvironmentVariables& env, ProcessStateOptions options)
    : env_(detect_launch_environment(env)), timeout_(resolve_timeout(env, options)) {
  const bool cpu = options.cpu || env_flag(env, "ACCELERATE_USE_CPU");
  const bool cuda = !cpu && torch::cuda::is_available();
  if (cuda) {
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env_.local_rank % torch::cuda::device_count()));
  }
  // Our launcher reads the workers' output through pipes; line buffering keeps lines whole and in order,
  // and keeps them when a worker is killed.
  if (env_.launcher == Launcher::Accelerate) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
  }
  if (!use_distributed()) return;

  std::string backend = options.backend.empty() ? (cuda ? "nccl" : "gloo") : options.backend;
  std::unique_ptr<detail::CommunicationBackend> strategy;
  if (backend == "gloo") {
    strategy = detail::make_gloo_backend();
  } else if (backend == "nccl") {
    ACCELERATE_CHECK(cuda, ConfigError, "backend 'nccl' needs CUDA, but ",
                     cpu ? "CPU was forced (cpu=true / ACCELERATE_USE_CPU)" : "no CUDA device is available",
                     ". Use backend 'gloo' or leave it empty to choose automatically.");
    strategy = detail::make_nccl_backend();
    ACCELERATE_CHECK(strategy, ConfigError, "backend 'nccl' requested, but accelerate-cpp was built without CUDA.");
  } else {
    throw ConfigError(detail::concat("Unknown backend '", backend, "'. Choose between: gloo, nccl (or empty for auto)."));
  }
  type_ = cuda ? DistributedType::MultiGpu : DistributedType::MultiCpu;
  backend_ = strategy->name();
  comm_ = std::make_unique<detail::Communicator>(env_, *strategy, timeout_);
  comm_->set_debug(options.debug.value_or(env_flag(env, "ACCELERATE_DEBUG_MODE")));
}

ProcessState::~ProcessState() = default;
ProcessState::ProcessState(ProcessState&&) noexcept = default;
ProcessState& ProcessState::operator=(ProcessState&&) noexcept = default;

void ProcessState::destroy_process_group() {
  if (!comm_) return;
  comm_->check_usable("destroy_process_group");
  c10d::BarrierOptions options;
  options.timeout = timeout_;
  comm_->wait(comm_->cpu_backend().barrier(options), "destroy_process_group (barrier)");
  comm_->shutdown();
}

}  // namespace accelerate
