// What `accelerate-cpp launch` will start: options resolved from flags and config file, and one WorkerSpec
// per local process with the torchrun-compatible environment. Pure: no processes, no sockets.
#pragma once

#include <accelerate/mixed_precision.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace accelerate::launcher {

struct LaunchOptions {
  std::optional<int> num_processes;  ///< total across machines, as HF
  bool cpu = false;
  std::optional<int> num_machines;
  std::optional<int> machine_rank;
  std::optional<std::string> main_process_ip;
  std::optional<int> main_process_port;  ///< unset: a free port (single machine) or 29500 (multi-node)
  std::optional<MixedPrecision> mixed_precision;
  std::optional<int> gradient_accumulation_steps;
  std::optional<int> zero_stage;  ///< ACCELERATE_CPP_ZERO_STAGE for the workers
  std::optional<int> num_cpu_threads_per_process;
  std::optional<double> timeout_s;     ///< rendezvous/collective timeout given to the workers
  std::optional<std::string> gpu_ids;  ///< "0,1": set as CUDA_VISIBLE_DEVICES for the workers (HF's gpu_ids)
  bool debug = false;
  bool rank_prefix = true;       ///< prefix worker output lines with "[rank N]" when N > 1
  double grace_period_s = 25.0;  ///< after a forwarded SIGTERM/SIGUSR1: the workers' time to save, then SIGKILL
  int max_restarts = 0;          ///< torchrun's --max_restarts: a failed group is started again this many times
  std::optional<std::string> config_file;
  std::string program;
  std::vector<std::string> program_args;
};

/// Fills options not given on the command line from an HF-style YAML config file (flags win, as in HF).
/// Throws ConfigError for a missing file, bad YAML, unknown keys or values of the wrong type.
void merge_config_file(LaunchOptions& options, const std::string& path);

struct WorkerSpec {
  int rank = 0;
  int local_rank = 0;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  ///< set on top of the launcher's own environment
};

struct LaunchPlan {
  int world_size = 1;
  int local_world_size = 1;
  int node_rank = 0;
  int num_nodes = 1;
  std::string master_addr;
  int master_port = 0;
  bool hosts_rendezvous = false;  ///< this machine runs rank 0
  std::vector<WorkerSpec> workers;
};

/// A value CUDA_VISIBLE_DEVICES takes: GPU indexes or UUIDs separated by single commas (at most 4096 characters).
bool valid_gpu_ids(const std::string& ids);

/// Validates the options and builds the plan. `free_port` is called when a port must be picked;
/// `cpu_count` is the number of cores (for OMP_NUM_THREADS). Throws ConfigError with the fix.
LaunchPlan make_plan(const LaunchOptions& options, const std::string& resolved_program, int (*free_port)(),
                     int cpu_count, const std::map<std::string, std::string>& parent_env);

/// Resolves PROGRAM like execvp: a path with '/' as is, else searched in PATH. Throws LaunchError when it is
/// missing or not executable.
std::string resolve_program(const std::string& program, const std::string& path_env);

}  // namespace accelerate::launcher
