// ProcessState: environment detection, device choice, backend choice and the process group's lifetime.
#include <accelerate/process_state.hpp>

#include <accelerate/error.hpp>

#include <csignal>
#include <cstdio>
#include <sys/prctl.h>
#include <iostream>
#include <accelerate/system_info.hpp>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Logging.h>
#include <torch/cuda.h>

#include "detail/communicator.hpp"

namespace accelerate {
namespace {

/// A number of seconds from the environment, `fallback` when unset; above 0 when `positive` (a timeout), else at
/// least 0 (0 meaning "off").
std::chrono::milliseconds env_seconds(const EnvironmentVariables& env, const char* key,
                                      std::chrono::milliseconds fallback, bool positive) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return fallback;
  double value = -1;
  try {
    size_t used = 0;
    value = std::stod(it->second, &used);
    if (used != it->second.size()) value = -1;
  } catch (const std::exception&) {
  }
  // At most a year: beyond, c10d's millisecond counts overflow (1e30 s became a negative timeout).
  ACCELERATE_CHECK((positive ? value >= 0.001 : value >= 0) && value <= 31536000, ConfigError, key, "='", it->second,
                   "' is not a ", positive ? "positive" : "non-negative",
                   " number of seconds up to 31536000 (a year), e.g. ", key, "=600.");
  return std::chrono::milliseconds(static_cast<int64_t>(value * 1000));
}

std::chrono::milliseconds resolve_timeout(const EnvironmentVariables& env, const ProcessStateOptions& options) {
  if (options.timeout) {
    ACCELERATE_CHECK(options.timeout->count() > 0 && *options.timeout <= std::chrono::hours(24 * 365), ConfigError,
                     "ProcessStateOptions::timeout must be positive and at most a year, got ", options.timeout->count(),
                     " ms.");
    return *options.timeout;
  }
  return env_seconds(env, "ACCELERATE_CPP_TIMEOUT", kDefaultTimeout, /*positive=*/true);
}

bool env_flag(const EnvironmentVariables& env, const char* key, bool fallback = false) {
  auto it = env.find(key);
  return it == env.end() || it->second.empty() ? fallback : parse_bool(it->second, key);
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
  // As in Python, a C++ error's message comes without c10's 15-frame stack trace unless
  // TORCH_SHOW_CPP_STACKTRACES asks for it: the frames buried our one-paragraph errors and torch's own warnings.
  if (auto it = env.find("TORCH_SHOW_CPP_STACKTRACES"); it == env.end() || it->second.empty() || it->second == "0") {
    c10::SetStackTraceFetcher([]() -> std::string { return ""; });
  }
  // Under our launcher: die with the parent, so that a program started through a wrapper script (whose shell
  // gets the launcher's PR_SET_PDEATHSIG) does not train on alone when the launcher is killed.
  if (env_.launcher == Launcher::Accelerate) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const bool cpu = options.cpu || env_flag(env, "ACCELERATE_USE_CPU");
  const bool cuda = !cpu && torch::cuda::is_available();
  if (cuda) {
    const int gpus = static_cast<int>(torch::cuda::device_count());
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env_.local_rank % gpus));
    // Every CUDA job works on its own GPU from here on (as HF sets the device for every multi-GPU job), whatever
    // the backend: Gloo with CUDA tensors needs it as much as NCCL.
    c10::impl::getDeviceGuardImpl(c10::kCUDA)->setDevice(device_);
    if (env_.local_world_size > gpus && env_.local_rank == 0) {
      std::cerr << "accelerate: warning: " << env_.local_world_size << " processes on this machine share " << gpus
                << " visible GPU(s); NCCL refuses two ranks on one GPU (use --num_processes " << gpus
                << " per machine, or backend gloo)." << std::endl;
    }
  } else if (!cpu && env_.local_rank == 0) {
    if (const auto problem = runtime_info().cuda_problem; !problem.empty()) {
      std::cerr << "accelerate: warning: " << problem << std::endl;
    }
  }
  // Our launcher reads the workers' output through pipes; line buffering keeps lines whole and in order,
  // and keeps them when a worker is killed.
  if (env_.launcher == Launcher::Accelerate) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
  }
  // HF creates the process group under torchrun even for a world of one; we do on request, so that one GPU can
  // exercise the NCCL backend, the Reducer and the CUDA collectives.
  forced_group_ =
      env_.world_size == 1 && (options.force_process_group || env_flag(env, "ACCELERATE_CPP_FORCE_PROCESS_GROUP"));
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
    const int gpus = static_cast<int>(torch::cuda::device_count());
    ACCELERATE_CHECK(env_.local_world_size <= gpus, ConfigError, "backend nccl: ", env_.local_world_size,
                     " processes on this machine but ", gpus,
                     " visible GPU(s), and NCCL cannot run two ranks on one "
                     "GPU (it fails later with \"Duplicate GPU detected\"). Start at most ",
                     gpus, " processes per machine (--num_processes), or use backend gloo (slower) to share a GPU.");
  } else {
    throw ConfigError(
        detail::concat("Unknown backend '", backend, "'. Choose between: gloo, nccl (or empty for auto)."));
  }
  type_ = cuda ? DistributedType::MultiGpu : DistributedType::MultiCpu;
  backend_ = strategy->name();
  // The stall warning comes at the smaller of 60 s and half the timeout unless ACCELERATE_CPP_STALL_WARNING says
  // otherwise (0: never).
  const auto stall_warning = env_seconds(env, "ACCELERATE_CPP_STALL_WARNING",
                                         std::min<std::chrono::milliseconds>(std::chrono::seconds(60), timeout_ / 2),
                                         /*positive=*/false);
  comm_ = std::make_unique<detail::Communicator>(
      env_, *strategy,
      detail::CommunicatorOptions{.timeout = timeout_,
                                  .stall_warning = stall_warning,
                                  .debug = options.debug.value_or(env_flag(env, "ACCELERATE_DEBUG_MODE")),
                                  .hang_report = env_flag(env, "ACCELERATE_CPP_HANG_REPORT", /*fallback=*/true)});
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
