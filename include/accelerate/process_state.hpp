// ProcessState: this process's place in the world and the process group it talks through
// (HF Accelerate's PartialState, but an object you own rather than a Borg singleton).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <c10/core/Device.h>

#include <accelerate/environment.hpp>
#include <accelerate/settings.hpp>

namespace accelerate {

enum class DistributedType { No, MultiCpu, MultiGpu };
std::string to_string(DistributedType type);

/// Default timeout for rendezvous and every collective: long enough for a slow step or a checkpoint on a busy
/// machine, short enough that a dead peer ends the job instead of hanging it. Overridden by
/// ProcessStateOptions::timeout, else by the environment variable ACCELERATE_CPP_TIMEOUT (seconds).
inline constexpr std::chrono::seconds kDefaultTimeout{600};

struct ProcessStateOptions {
  /// Force CPU even when CUDA is available (also set by ACCELERATE_USE_CPU=true, `launch --cpu`).
  bool cpu = false;
  /// Rendezvous and collective timeout; unset: ACCELERATE_CPP_TIMEOUT, else kDefaultTimeout.
  std::optional<std::chrono::milliseconds> timeout;
  /// "gloo" or "nccl"; empty picks nccl on CUDA, gloo on CPU.
  std::string backend;
  /// Debug mode: ranks compare each tensor collective's operation, dtype, device and shapes before running it.
  /// Unset: ACCELERATE_DEBUG_MODE (set by `launch --debug` or `debug: true` in the config).
  std::optional<bool> debug;
  /// Create the process group (and so DDP's Reducer) even for a world of one, as HF does under torchrun; also
  /// ACCELERATE_CPP_FORCE_PROCESS_GROUP=1. For checking the distributed path on a single GPU.
  bool force_process_group = false;
};

namespace detail {
struct ProcessStateAccess;  // the library's own code reaches the process group through it
}

class ProcessState {
 public:
  /// Detects the launch environment of this process and joins the process group (blocks until every rank
  /// has joined, or throws after the timeout).
  explicit ProcessState(ProcessStateOptions options = {});
  /// The same from an explicit environment (tests, embedding).
  ProcessState(const EnvironmentVariables& env, ProcessStateOptions options);
  ~ProcessState();
  ProcessState(ProcessState&&) noexcept;
  ProcessState& operator=(ProcessState&&) noexcept;
  ProcessState(const ProcessState&) = delete;
  ProcessState& operator=(const ProcessState&) = delete;

  int process_index() const { return settings_.launch.rank; }
  int local_process_index() const { return settings_.launch.local_rank; }
  int num_processes() const { return settings_.launch.world_size; }
  int num_local_processes() const { return settings_.launch.local_world_size; }
  int num_machines() const { return settings_.launch.num_nodes; }
  int machine_rank() const { return settings_.launch.node_rank; }
  bool is_main_process() const { return settings_.launch.rank == 0; }
  bool is_local_main_process() const { return settings_.launch.local_rank == 0; }
  bool is_last_process() const { return settings_.launch.rank == settings_.launch.world_size - 1; }
  /// A process group exists: more than one process, or a world of one with force_process_group.
  bool use_distributed() const { return settings_.launch.world_size > 1 || forced_group_; }
  DistributedType distributed_type() const { return type_; }
  /// "gloo", "nccl", or "" for a single process.
  const std::string& backend() const { return backend_; }
  Launcher launcher() const { return settings_.launch.launcher; }
  c10::Device device() const { return device_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const LaunchEnvironment& launch_environment() const { return settings_.launch; }
  /// The environment's settings, read and validated once at construction (the Accelerator and get_logger take
  /// their defaults from here rather than from the process environment).
  const EnvironmentSettings& settings() const { return settings_; }

  /// Barrier with the others, then leaves the process group. Collectives afterwards throw StateError.
  /// The destructor leaves without the barrier (a barrier in a destructor can hang when a peer died).
  void destroy_process_group();
  /// destroy_process_group() (end_training) has run: there are no collectives any more.
  bool process_group_destroyed() const;

 private:
  EnvironmentSettings settings_;
  DistributedType type_ = DistributedType::No;
  std::string backend_;
  c10::Device device_{c10::kCPU};
  std::chrono::milliseconds timeout_{kDefaultTimeout};
  struct Group;  // the process group and its bookkeeping (src/process_state.cpp); null for a single process
  std::unique_ptr<Group> group_;
  bool forced_group_ = false;
  friend struct detail::ProcessStateAccess;
};

}  // namespace accelerate
