// ProcessState: environment detection, device choice, backend choice and the process group's lifetime.
#include <accelerate/process_state.hpp>

#include <accelerate/error.hpp>

#include <csignal>
#include <cstdio>
#include <sys/prctl.h>
#include <thread>
#include <iostream>
#include <accelerate/system_info.hpp>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <ATen/Parallel.h>
#include <c10/util/Logging.h>
#include <torch/cuda.h>

#include "detail/communicator.hpp"
#include "detail/launch_threads.hpp"

namespace accelerate {

struct ProcessState::Group : detail::Communicator {
  using Communicator::Communicator;
};

namespace detail {
struct ProcessStateAccess {
  static Communicator* communicator(const ProcessState& state) { return state.group_.get(); }
};
Communicator* communicator_of(const ProcessState& state) { return ProcessStateAccess::communicator(state); }
}  // namespace detail

namespace {

std::chrono::milliseconds resolve_timeout(const EnvironmentSettings& settings, const ProcessStateOptions& options) {
  if (options.timeout) {
    ACCELERATE_CHECK(options.timeout->count() > 0 && *options.timeout <= std::chrono::hours(24 * 365), ConfigError,
                     "ProcessStateOptions::timeout must be positive and at most a year, got ", options.timeout->count(),
                     " ms.");
    return *options.timeout;
  }
  return settings.timeout.value_or(kDefaultTimeout);
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

namespace {

/// The GPU of this local rank (made the current device), else the CPU; warns once per machine about GPUs
/// shared by several ranks or CUDA that is installed but unusable.
c10::Device choose_device(const LaunchEnvironment& launch, bool cpu) {
  const bool cuda = !cpu && torch::cuda::is_available();
  if (!cuda) {
    if (!cpu && launch.local_rank == 0) {
      if (const auto problem = runtime_info().cuda_problem; !problem.empty()) {
        std::cerr << "accelerate: warning: " << problem << std::endl;
      }
    }
    return c10::Device(c10::kCPU);
  }
  const int gpus = static_cast<int>(torch::cuda::device_count());
  const c10::Device device(c10::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank % gpus));
  // Every CUDA job works on its own GPU from here on (as HF sets the device for every multi-GPU job), whatever
  // the backend: Gloo with CUDA tensors needs it as much as NCCL.
  c10::impl::getDeviceGuardImpl(c10::kCUDA)->setDevice(device);
  if (launch.local_world_size > gpus && launch.local_rank == 0) {
    std::cerr << "accelerate: warning: " << launch.local_world_size << " processes on this machine share " << gpus
              << " visible GPU(s); NCCL refuses two ranks on one GPU (use --num_processes " << gpus
              << " per machine, or backend gloo)." << std::endl;
  }
  return device;
}

/// The backend strategy for `requested` ("gloo", "nccl", or "" for nccl on CUDA, else gloo).
std::unique_ptr<detail::CommunicationBackend> make_backend(const std::string& requested, bool cuda, bool cpu_forced,
                                                           const LaunchEnvironment& launch) {
  const std::string backend = requested.empty() ? (cuda ? "nccl" : "gloo") : requested;
  if (backend == "gloo") return detail::make_gloo_backend();
  ACCELERATE_CHECK(backend == "nccl", ConfigError, "Unknown backend '", backend,
                   "'. Choose between: gloo, nccl (or empty for auto).");
  ACCELERATE_CHECK(cuda, ConfigError, "backend 'nccl' needs CUDA, but ",
                   cpu_forced ? "CPU was forced (cpu=true / ACCELERATE_USE_CPU)" : "no CUDA device is available",
                   ". Use backend 'gloo' or leave it empty to choose automatically.");
  auto strategy = detail::make_nccl_backend();
  ACCELERATE_CHECK(strategy, ConfigError, "backend 'nccl' requested, but accelerate-cpp was built without CUDA.");
  const int gpus = static_cast<int>(torch::cuda::device_count());
  ACCELERATE_CHECK(launch.local_world_size <= gpus, ConfigError, "backend nccl: ", launch.local_world_size,
                   " processes on this machine but ", gpus,
                   " visible GPU(s), and NCCL cannot run two ranks on one GPU (it fails later with \"Duplicate GPU "
                   "detected\"). Start at most ",
                   gpus, " processes per machine (--num_processes), or use backend gloo (slower) to share a GPU.");
  return strategy;
}

}  // namespace

ProcessState::ProcessState(const EnvironmentVariables& env, ProcessStateOptions options)
    : settings_(read_environment_settings(env)), timeout_(resolve_timeout(settings_, options)) {
  const auto& launch = settings_.launch;
  // As in Python, a C++ error's message comes without c10's 15-frame stack trace unless
  // TORCH_SHOW_CPP_STACKTRACES asks for it: the frames buried our one-paragraph errors and torch's own warnings.
  if (!settings_.show_cpp_stacktraces) c10::SetStackTraceFetcher([]() -> std::string { return ""; });
  if (launch.launcher == Launcher::Accelerate) {
    // Under our launcher: die with the parent, so that a program started through a wrapper script (whose shell
    // gets the launcher's PR_SET_PDEATHSIG) does not train on alone when the launcher is killed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The launcher reads the workers' output through pipes; line buffering keeps lines whole and in order, and
    // keeps them when a worker is killed.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
  }
  // srun and mpirun export no OMP_NUM_THREADS: share the cores as torchrun and our launcher do.
  if (auto threads = detail::default_intra_op_threads(launch, env, detail::allowed_cpus(),
                                                      static_cast<int>(std::thread::hardware_concurrency()))) {
    at::set_num_threads(*threads);
  }
  const bool cpu = options.cpu || settings_.use_cpu;
  device_ = choose_device(launch, cpu);
  // HF creates the process group under torchrun even for a world of one; we do on request, so that one GPU can
  // exercise the NCCL backend, the Reducer and the CUDA collectives.
  forced_group_ = launch.world_size == 1 && (options.force_process_group || settings_.force_process_group);
  if (!use_distributed()) return;

  const auto strategy = make_backend(options.backend, device_.is_cuda(), cpu, launch);
  type_ = device_.is_cuda() ? DistributedType::MultiGpu : DistributedType::MultiCpu;
  backend_ = strategy->name();
  // The stall warning comes at the smaller of 60 s and half the timeout unless ACCELERATE_CPP_STALL_WARNING says
  // otherwise (0: never).
  const auto stall_warning =
      settings_.stall_warning.value_or(std::min<std::chrono::milliseconds>(std::chrono::seconds(60), timeout_ / 2));
  group_ = std::make_unique<Group>(
      launch, *strategy,
      detail::CommunicatorOptions{.timeout = timeout_,
                                  .stall_warning = stall_warning,
                                  .debug = options.debug.value_or(settings_.debug_mode.value_or(false)),
                                  .hang_report = settings_.hang_report});
}

ProcessState::~ProcessState() = default;
ProcessState::ProcessState(ProcessState&&) noexcept = default;
ProcessState& ProcessState::operator=(ProcessState&&) noexcept = default;

bool ProcessState::process_group_destroyed() const { return group_ && !group_->group_ptr(); }

void ProcessState::destroy_process_group() {
  if (!group_) return;
  group_->check_usable("destroy_process_group");
  c10d::BarrierOptions options;
  options.timeout = timeout_;
  group_->wait(group_->cpu_backend().barrier(options), "destroy_process_group (barrier)");
  group_->shutdown();
}

}  // namespace accelerate
