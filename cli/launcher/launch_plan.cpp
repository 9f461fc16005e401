#include "launcher/launch_plan.hpp"

#include <algorithm>
#include <cctype>

#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>
#include <accelerate/mixed_precision.hpp>

#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace accelerate::launcher {
namespace {

std::string run_id() {
  std::random_device rd;
  std::ostringstream s;
  s << std::hex << rd() << rd();
  return s.str();
}

/// The machines and processes (world, local world, node rank) from the options, checked against each other.
void set_topology(const LaunchOptions& o, LaunchPlan& plan) {
  plan.num_nodes = o.num_machines.value_or(1);
  ACCELERATE_CHECK(plan.num_nodes >= 1, ConfigError, "--num_machines must be >= 1, got ", plan.num_nodes, ".");
  plan.world_size = o.num_processes.value_or(plan.num_nodes);
  ACCELERATE_CHECK(plan.world_size >= 1, ConfigError,
                   "--num_processes must be >= 1 (the total over all machines), got ", plan.world_size, ".");
  ACCELERATE_CHECK(plan.world_size % plan.num_nodes == 0, ConfigError, "--num_processes ", plan.world_size,
                   " is not a multiple of --num_machines ", plan.num_nodes,
                   ": every machine runs num_processes / num_machines processes.");
  plan.local_world_size = plan.world_size / plan.num_nodes;
  plan.node_rank = o.machine_rank.value_or(0);
  ACCELERATE_CHECK(plan.node_rank >= 0 && plan.node_rank < plan.num_nodes, ConfigError, "--machine_rank ",
                   plan.node_rank, " is out of range for --num_machines ", plan.num_nodes, " (valid: 0..",
                   plan.num_nodes - 1, ").");
  plan.hosts_rendezvous = plan.node_rank == 0;
}

/// The rendezvous address and port; `free_port` is called only when a port must be picked.
void set_rendezvous(const LaunchOptions& o, int (*free_port)(), LaunchPlan& plan) {
  if (plan.num_nodes > 1) {
    ACCELERATE_CHECK(o.main_process_ip && !o.main_process_ip->empty(), ConfigError,
                     "--main_process_ip is required with --num_machines ", plan.num_nodes,
                     ": give the address of machine 0 (the same on every machine).");
    plan.master_addr = *o.main_process_ip;
  } else {
    plan.master_addr = o.main_process_ip.value_or("127.0.0.1");
  }
  if (o.main_process_port && *o.main_process_port != 0) {
    ACCELERATE_CHECK(*o.main_process_port > 0 && *o.main_process_port < 65536, ConfigError, "--main_process_port ",
                     *o.main_process_port, " is not a TCP port; use 1-65535, or 0 for a free one.");
    plan.master_port = *o.main_process_port;
  } else if (plan.num_nodes > 1 && !o.main_process_port) {
    plan.master_port = 29500;  // every machine must agree without talking: HF's and torchrun's default
  } else {
    ACCELERATE_CHECK(plan.num_nodes == 1, ConfigError,
                     "--main_process_port 0 (pick a free port) only works on one machine: the others cannot learn "
                     "it. Give the same fixed port on every machine.");
    plan.master_port = free_port();
  }
}

/// Checks the options that are passed on to the workers (precision, ZeRO, GPUs, timeouts, threads, restarts).
void check_worker_options(const LaunchOptions& o, int num_nodes) {
  if (o.gradient_accumulation_steps) {
    ACCELERATE_CHECK(*o.gradient_accumulation_steps >= 1, ConfigError,
                     "--gradient_accumulation_steps must be >= 1, got ", *o.gradient_accumulation_steps, ".");
  }
  if (o.zero_stage) check_zero_stage(*o.zero_stage, "--zero_stage");
  ACCELERATE_CHECK(o.max_restarts >= 0, ConfigError, "--max_restarts must be >= 0, got ", o.max_restarts, ".");
  ACCELERATE_CHECK(o.max_restarts == 0 || num_nodes == 1, ConfigError,
                   "--max_restarts works on one machine for now: restarting several machines together needs an "
                   "elastic rendezvous. Restart the job from your scheduler (docs/launch.md).");
  if (o.gpu_ids && *o.gpu_ids != "all") {
    const auto& ids = *o.gpu_ids;
    ACCELERATE_CHECK(valid_gpu_ids(ids), ConfigError,
                     "--gpu_ids must be \"all\" or GPUs separated by commas (indexes such as 0,1, or UUIDs), got '",
                     ids.substr(0, 60), ids.size() > 60 ? "...'." : "'.");
  }
  if (o.timeout_s) {
    // Bounded both ways: below a millisecond nothing can finish, and beyond a year c10d's millisecond counts
    // overflow (a timeout of 1e30 became a negative one).
    ACCELERATE_CHECK(*o.timeout_s >= 0.001 && *o.timeout_s <= 31536000, ConfigError,
                     "--timeout must be a number of seconds between 0.001 and 31536000 (a year), got ", *o.timeout_s,
                     ".");
  }
  if (o.num_cpu_threads_per_process) {
    ACCELERATE_CHECK(*o.num_cpu_threads_per_process >= 1, ConfigError,
                     "--num_cpu_threads_per_process must be >= 1, got ", *o.num_cpu_threads_per_process, ".");
  }
  ACCELERATE_CHECK(o.grace_period_s >= 0 && o.grace_period_s <= 31536000, ConfigError,
                   "--grace_period must be a number of seconds between 0 and 31536000 (a year), got ", o.grace_period_s,
                   ".");
}

/// OMP_NUM_THREADS as HF sets it: the flag, else "" (the parent's value wins), else the cores shared between workers.
std::string omp_threads(const LaunchOptions& o, int cpu_count, int local_world_size,
                        const std::map<std::string, std::string>& parent_env) {
  std::string threads;
  if (o.num_cpu_threads_per_process) {
    threads = std::to_string(*o.num_cpu_threads_per_process);
  } else if (auto it = parent_env.find(env_var::kOmpNumThreads); it == parent_env.end() || it->second.empty()) {
    threads = std::to_string(std::max(1, cpu_count / local_world_size));
  }
  return threads;
}

/// torchrun's contract (Lightning detects torchelastic through RANK, GROUP_RANK, LOCAL_RANK, LOCAL_WORLD_SIZE).
void set_torchrun_env(const LaunchPlan& plan, int rank, int local, int max_restarts, const std::string& id,
                      std::map<std::string, std::string>& e) {
  e[env_var::kRank] = std::to_string(rank);
  e[env_var::kLocalRank] = std::to_string(local);
  e[env_var::kWorldSize] = std::to_string(plan.world_size);
  e[env_var::kLocalWorldSize] = std::to_string(plan.local_world_size);
  e[env_var::kGroupRank] = std::to_string(plan.node_rank);
  e[env_var::kGroupWorldSize] = std::to_string(plan.num_nodes);
  e[env_var::kRoleName] = "default";
  e[env_var::kRoleRank] = std::to_string(rank);
  e[env_var::kRoleWorldSize] = std::to_string(plan.world_size);
  e[env_var::kMasterAddr] = plan.master_addr;
  e[env_var::kMasterPort] = std::to_string(plan.master_port);
  e[env_var::kRestartCount] = "0";
  e[env_var::kMaxRestarts] = std::to_string(max_restarts);
  e[env_var::kRunId] = id;
  e[env_var::kUseAgentStore] = "False";
}

/// HF Accelerate's variables, plus ours; `threads` "" leaves OMP_NUM_THREADS to the parent.
void set_accelerate_env(const LaunchOptions& o, const std::string& threads,
                        const std::map<std::string, std::string>& parent_env, std::map<std::string, std::string>& e) {
  e[env_var::kLaunched] = "1";
  e[env_var::kUseCpu] = o.cpu ? "True" : "False";
  e[env_var::kMixedPrecision] = to_string(o.mixed_precision.value_or(MixedPrecision::No));
  if (o.gradient_accumulation_steps) {
    e[env_var::kGradientAccumulationSteps] = std::to_string(*o.gradient_accumulation_steps);
  }
  if (o.zero_stage) e[env_var::kZeroStage] = std::to_string(*o.zero_stage);
  if (o.debug) e[env_var::kDebugMode] = "true";
  if (o.timeout_s) {
    std::ostringstream t;
    t << *o.timeout_s;
    e[env_var::kTimeout] = t.str();
  }
  if (!threads.empty()) e[env_var::kOmpNumThreads] = threads;
  // glibc gives the top of its heap back to the kernel once 128 KiB-32 MiB of it is free, and a training step
  // frees its activations every step: the next step faults the same pages in again (8-17% of a small GPT's CPU
  // step here; bench/README.md). Keeping them is what the jemalloc/tcmalloc preload of PyTorch's CPU launcher
  // (torch.backends.xeon.run_cpu) buys; with glibc it is two variables. The parent's values win.
  for (const auto& [name, value] :
       {std::pair{env_var::kMallocMmapThreshold, "33554432"}, std::pair{env_var::kMallocTrimThreshold, "1073741824"}}) {
    if (!parent_env.contains(name)) e[name] = value;
  }
  // As HF's launch: the chosen GPUs are the only ones the workers see (local rank i takes the i-th of them).
  if (o.gpu_ids && *o.gpu_ids != "all") e[env_var::kCudaVisibleDevices] = *o.gpu_ids;
}

}  // namespace

std::string resolve_program(const std::string& program, const std::string& path_env) {
  ACCELERATE_CHECK(!program.empty(), LaunchError,
                   "No program to launch. Usage: accelerate-cpp launch [flags] PROGRAM [ARGS...]");
  auto check = [&](const std::string& candidate) -> bool {
    struct stat st {};
    if (::stat(candidate.c_str(), &st) != 0) return false;
    ACCELERATE_CHECK(!S_ISDIR(st.st_mode), LaunchError, "PROGRAM '", candidate, "' is a directory, not an executable.");
    ACCELERATE_CHECK(::access(candidate.c_str(), X_OK) == 0, LaunchError, "PROGRAM '", candidate,
                     "' is not executable. Fix: chmod +x '", candidate, "' (or build it first).");
    return true;
  };
  if (program.find('/') != std::string::npos) {
    ACCELERATE_CHECK(check(program), LaunchError, "PROGRAM '", program,
                     "' does not exist. Check the path (relative paths start from the current directory).");
    return program;
  }
  std::stringstream dirs(path_env);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && !S_ISDIR(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  throw LaunchError(detail::concat("PROGRAM '", program, "' was not found in PATH. Give its path (e.g. ./build/bin/",
                                   program, ") or add its directory to PATH."));
}

bool valid_gpu_ids(const std::string& ids) {
  // What CUDA_VISIBLE_DEVICES takes: indexes or UUIDs ("GPU-...", "MIG-..."), separated by single commas.
  if (ids.empty() || ids.size() > 4096 || ids.front() == ',' || ids.back() == ',' ||
      ids.find(",,") != std::string::npos) {
    return false;
  }
  return std::all_of(ids.begin(), ids.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ',' || c == '-' || c == '_';
  });
}

LaunchPlan make_plan(const LaunchOptions& o, const std::string& resolved_program, int (*free_port)(), int cpu_count,
                     const std::map<std::string, std::string>& parent_env) {
  LaunchPlan plan;
  set_topology(o, plan);
  set_rendezvous(o, free_port, plan);
  check_worker_options(o, plan.num_nodes);
  const std::string threads = omp_threads(o, cpu_count, plan.local_world_size, parent_env);
  const std::string id = run_id();
  for (int local = 0; local < plan.local_world_size; ++local) {
    WorkerSpec w;
    w.local_rank = local;
    w.rank = plan.node_rank * plan.local_world_size + local;
    w.argv.push_back(resolved_program);
    w.argv.insert(w.argv.end(), o.program_args.begin(), o.program_args.end());
    set_torchrun_env(plan, w.rank, local, o.max_restarts, id, w.env);
    set_accelerate_env(o, threads, parent_env, w.env);
    plan.workers.push_back(std::move(w));
  }
  return plan;
}

}  // namespace accelerate::launcher
