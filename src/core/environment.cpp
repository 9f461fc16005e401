// Launch-environment detection. Order: ours, torchrun, Open MPI, SLURM, else a single process.
#include <accelerate/environment.hpp>

#include "detail/launch_threads.hpp"

#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <thread>

#include <sched.h>

extern char** environ;

namespace accelerate {
namespace {

std::optional<std::string> lookup(const EnvironmentVariables& env, const std::string& key) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

/// Reads the first of `keys` that is set; `fallback` when none is.
std::optional<int> read_int(const EnvironmentVariables& env, std::initializer_list<const char*> keys, const char* fix) {
  for (const char* key : keys) {
    if (auto v = lookup(env, key)) return parse_int_variable(key, *v, fix);
  }
  return std::nullopt;
}

int require_int(const EnvironmentVariables& env, const char* key, const char* fix) {
  auto v = read_int(env, {key}, fix);
  ACCELERATE_CHECK(v.has_value(), ConfigError, "Environment variable ", key, " is not set. ", fix);
  return *v;
}

constexpr const char* kTorchrunFix =
    "Start the program with `accelerate-cpp launch` or torchrun, which set RANK, WORLD_SIZE, LOCAL_RANK, "
    "LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT consistently, or unset them all to run a single process.";
constexpr const char* kMpiFix = "Start the program with mpirun, which sets OMPI_COMM_WORLD_* consistently.";
constexpr const char* kSlurmFix = "Start the program with srun inside an allocation, which sets SLURM_* consistently.";

void read_master(const EnvironmentVariables& env, LaunchEnvironment& out, bool port_required, const char* fix) {
  if (out.world_size <= 1) return;
  if (auto addr = lookup(env, env_var::kMasterAddr)) {
    out.master_addr = *addr;
  } else {
    ACCELERATE_CHECK(out.num_nodes == 1, ConfigError, "MASTER_ADDR is not set, and the job spans ", out.num_nodes,
                     " nodes, so the rendezvous host is unknown. Export MASTER_ADDR=<host of rank 0> "
                     "on every node (launch: --main_process_ip).");
  }
  auto port = read_int(env, {env_var::kMasterPort}, fix);
  if (!port) {
    ACCELERATE_CHECK(!port_required, ConfigError, "MASTER_PORT is not set but WORLD_SIZE=", out.world_size,
                     " > 1: the processes cannot find the rendezvous. Export MASTER_PORT=<free port on rank 0's "
                     "host>, or use `accelerate-cpp launch`, which picks one. ",
                     fix);
    port = 29500;  // what HF and torch default to for MPI and SLURM worlds
  }
  ACCELERATE_CHECK(*port > 0 && *port < 65536, ConfigError, "MASTER_PORT=", *port, " is not a TCP port; use 1-65535.");
  out.master_port = *port;
}

void validate(const LaunchEnvironment& e, const char* rank_var, const char* world_var, const char* local_var,
              const char* fix) {
  ACCELERATE_CHECK(e.world_size >= 1, ConfigError, world_var, "=", e.world_size, " must be >= 1. ", fix);
  ACCELERATE_CHECK(e.rank >= 0 && e.rank < e.world_size, ConfigError, rank_var, "=", e.rank, " is out of range for ",
                   world_var, "=", e.world_size, " (valid: 0..", e.world_size - 1, "). ", fix);
  ACCELERATE_CHECK(e.local_world_size >= 1 && e.local_world_size <= e.world_size, ConfigError, "local world size ",
                   e.local_world_size, " does not fit ", world_var, "=", e.world_size, ". ", fix);
  ACCELERATE_CHECK(e.local_rank >= 0 && e.local_rank < e.local_world_size, ConfigError, local_var, "=", e.local_rank,
                   " is out of range for a local world of ", e.local_world_size, ". ", fix);
  ACCELERATE_CHECK(e.node_rank >= 0 && e.node_rank < e.num_nodes, ConfigError, "node rank ", e.node_rank,
                   " is out of range for ", e.num_nodes, " nodes. ", fix);
}

LaunchEnvironment from_torchrun(const EnvironmentVariables& env, Launcher launcher) {
  LaunchEnvironment e;
  e.launcher = launcher;
  e.rank = require_int(env, env_var::kRank, kTorchrunFix);
  e.world_size = require_int(env, env_var::kWorldSize, kTorchrunFix);
  e.local_rank = read_int(env, {env_var::kLocalRank}, kTorchrunFix).value_or(e.rank);
  e.local_world_size = read_int(env, {env_var::kLocalWorldSize}, kTorchrunFix).value_or(e.world_size);
  ACCELERATE_CHECK(e.local_world_size >= 1, ConfigError, "LOCAL_WORLD_SIZE=", e.local_world_size, " must be >= 1. ",
                   kTorchrunFix);
  e.num_nodes = read_int(env, {env_var::kGroupWorldSize}, kTorchrunFix)
                    .value_or((e.world_size + e.local_world_size - 1) / e.local_world_size);
  e.node_rank = read_int(env, {env_var::kGroupRank}, kTorchrunFix).value_or(e.rank / e.local_world_size);
  if (auto agent = lookup(env, env_var::kUseAgentStore)) {
    e.agent_store = parse_bool(*agent, env_var::kUseAgentStore);
  }
  e.restart_count = read_int(env, {env_var::kRestartCount}, kTorchrunFix).value_or(0);
  validate(e, env_var::kRank, env_var::kWorldSize, env_var::kLocalRank, kTorchrunFix);
  read_master(env, e, /*port_required=*/true, kTorchrunFix);
  return e;
}

LaunchEnvironment from_openmpi(const EnvironmentVariables& env) {
  LaunchEnvironment e;
  e.launcher = Launcher::OpenMPI;
  e.rank = require_int(env, "OMPI_COMM_WORLD_RANK", kMpiFix);
  e.world_size = require_int(env, "OMPI_COMM_WORLD_SIZE", kMpiFix);
  e.local_rank = read_int(env, {"OMPI_COMM_WORLD_LOCAL_RANK"}, kMpiFix).value_or(e.rank);
  e.local_world_size = read_int(env, {"OMPI_COMM_WORLD_LOCAL_SIZE"}, kMpiFix).value_or(e.world_size);
  ACCELERATE_CHECK(e.local_world_size >= 1, ConfigError, "OMPI_COMM_WORLD_LOCAL_SIZE must be >= 1. ", kMpiFix);
  // mpirun's default mapping is by slot: node-major blocks of local_world_size ranks.
  e.num_nodes = (e.world_size + e.local_world_size - 1) / e.local_world_size;
  e.node_rank = e.rank / e.local_world_size;
  validate(e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", kMpiFix);
  read_master(env, e, /*port_required=*/false, kMpiFix);
  return e;
}

/// The tasks on node `node` of SLURM's compressed per-node counts ("2(x3),1": 2, 2, 2, 1); nullopt when the list
/// is not in that form or has no such node.
std::optional<int> slurm_tasks_on_node(const std::string& counts, int node) {
  int index = 0;
  size_t pos = 0;
  while (pos < counts.size()) {
    const size_t end = std::min(counts.find(',', pos), counts.size());
    const std::string item = counts.substr(pos, end - pos);
    int tasks = 0, repeat = 1;
    const auto open = item.find("(x");
    const auto [p, ec] = std::from_chars(item.data(), item.data() + std::min(open, item.size()), tasks);
    if (ec != std::errc() || tasks < 1) return std::nullopt;
    if (open != std::string::npos) {
      const auto [q, ec2] = std::from_chars(item.data() + open + 2, item.data() + item.size(), repeat);
      if (ec2 != std::errc() || repeat < 1 || *q != ')') return std::nullopt;
    } else if (p != item.data() + item.size()) {
      return std::nullopt;
    }
    if (node < index + repeat) return tasks;
    index += repeat;
    pos = end + 1;
  }
  return std::nullopt;
}

LaunchEnvironment from_slurm(const EnvironmentVariables& env) {
  LaunchEnvironment e;
  e.launcher = Launcher::Slurm;
  e.rank = require_int(env, "SLURM_PROCID", kSlurmFix);
  // srun's tasks see their step's variables; the batch script itself (no step) sees the job's task count, which
  // only srun fulfils: waiting for those ranks would hang until the rendezvous times out.
  const auto step_tasks = read_int(env, {"SLURM_STEP_NUM_TASKS"}, kSlurmFix);
  e.world_size = step_tasks ? *step_tasks : require_int(env, "SLURM_NTASKS", kSlurmFix);
  ACCELERATE_CHECK(lookup(env, "SLURM_STEP_ID") || lookup(env, "SLURM_STEPID") || e.world_size <= 1, ConfigError,
                   "This process is SLURM's batch script itself (no SLURM_STEP_ID), where SLURM_NTASKS=", e.world_size,
                   " counts the tasks that srun would start; started like this, it would wait for ranks that never "
                   "come. Start it with `srun <program>` (one task per process) or through `srun accelerate-cpp "
                   "launch` (docs/launch.md, "
                   "\"On a SLURM cluster\").");
  e.local_rank = read_int(env, {"SLURM_LOCALID"}, kSlurmFix).value_or(0);
  e.num_nodes = read_int(env, {"SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"}, kSlurmFix).value_or(1);
  e.node_rank = read_int(env, {"SLURM_NODEID"}, kSlurmFix).value_or(0);
  ACCELERATE_CHECK(e.num_nodes >= 1, ConfigError, "SLURM_NNODES must be >= 1. ", kSlurmFix);
  // The step's own count for this node: the job's SLURM_NTASKS_PER_NODE stays when srun starts another layout.
  std::optional<int> here;
  if (auto counts = lookup(env, "SLURM_STEP_TASKS_PER_NODE")) here = slurm_tasks_on_node(*counts, e.node_rank);
  if (!here) here = read_int(env, {"SLURM_NTASKS_PER_NODE"}, kSlurmFix);
  e.local_world_size = here.value_or((e.world_size + e.num_nodes - 1) / e.num_nodes);
  validate(e, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", kSlurmFix);
  // SLURM names the hosts; the first one of the step runs rank 0 under the default block distribution.
  EnvironmentVariables with_master = env;
  if (!lookup(env, env_var::kMasterAddr)) {
    std::optional<std::string> nodelist;
    for (const char* key : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}) {
      if (!nodelist) nodelist = lookup(env, key);
    }
    if (nodelist) with_master[env_var::kMasterAddr] = first_host_in_slurm_nodelist(*nodelist);
  }
  read_master(with_master, e, /*port_required=*/false, kSlurmFix);
  return e;
}

}  // namespace

std::string to_string(Launcher launcher) {
  switch (launcher) {
    case Launcher::None: return "none";
    case Launcher::Accelerate: return "accelerate-cpp";
    case Launcher::Torchrun: return "torchrun";
    case Launcher::OpenMPI: return "openmpi";
    case Launcher::Slurm: return "slurm";
  }
  return "unknown";
}

EnvironmentVariables current_environment() {
  EnvironmentVariables env;
  for (char** p = environ; p && *p; ++p) {
    std::string entry(*p);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

std::string first_host_in_slurm_nodelist(const std::string& nodelist) {
  // Grammar: host[,host...], host = prefix[ranges]suffix, ranges = a[-b][,c[-d]...]. We need the first host only.
  std::string host;
  size_t i = 0;
  int depth = 0;
  for (; i < nodelist.size(); ++i) {
    char c = nodelist[i];
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
  }
  std::string first = nodelist.substr(0, i);
  auto open = first.find('[');
  if (open == std::string::npos) {
    ACCELERATE_CHECK(!first.empty(), ConfigError, "SLURM_NODELIST='", nodelist, "' names no host; set MASTER_ADDR.");
    return first;
  }
  auto close = first.find(']', open);
  ACCELERATE_CHECK(close != std::string::npos, ConfigError, "SLURM_NODELIST='", nodelist,
                   "' has an unclosed '['; set MASTER_ADDR to the host of rank 0.");
  std::string range = first.substr(open + 1, close - open - 1);
  std::string lowest = range.substr(0, range.find_first_of(",-"));
  ACCELERATE_CHECK(!lowest.empty(), ConfigError, "SLURM_NODELIST='", nodelist,
                   "' has an empty range; set MASTER_ADDR to the host of rank 0.");
  // The rest after ']' may hold further bracketed ranges (node[1-2]-ib[0-1]); take their first values too.
  std::string rest = first.substr(close + 1);
  std::string rest_host;
  for (size_t j = 0; j < rest.size(); ++j) {
    if (rest[j] == '[') {
      auto k = rest.find(']', j);
      if (k == std::string::npos) break;
      std::string r = rest.substr(j + 1, k - j - 1);
      rest_host += r.substr(0, r.find_first_of(",-"));
      j = k;
    } else {
      rest_host += rest[j];
    }
  }
  return first.substr(0, open) + lowest + rest_host;
}

namespace {
LaunchEnvironment detect_launcher(const EnvironmentVariables& env) {
  const bool ours = lookup(env, env_var::kLaunched).has_value();
  if (lookup(env, env_var::kRank) || lookup(env, env_var::kWorldSize) || lookup(env, env_var::kLocalRank)) {
    return from_torchrun(env, ours ? Launcher::Accelerate : Launcher::Torchrun);
  }
  if (lookup(env, "OMPI_COMM_WORLD_SIZE") || lookup(env, "OMPI_COMM_WORLD_RANK")) return from_openmpi(env);
  if (lookup(env, "SLURM_PROCID") && lookup(env, "SLURM_NTASKS")) return from_slurm(env);
  return LaunchEnvironment{};
}
}  // namespace

LaunchEnvironment detect_launch_environment(const EnvironmentVariables& env) {
  auto out = detect_launcher(env);
  out.error_file = lookup(env, env_var::kErrorFile).value_or("");
  out.gloo_socket_ifname = lookup(env, env_var::kGlooSocketIfname).value_or("");
  return out;
}

int detail::allowed_cpus() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) return std::max(1, CPU_COUNT(&allowed));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {
/// The CPUs this process may use: those it is bound to (by srun or mpirun), else its share of the machine's.
int cpu_share(const LaunchEnvironment& launch, int allowed_cpus, int online_cpus) {
  if (allowed_cpus >= 1 && allowed_cpus < online_cpus) return allowed_cpus;
  return std::max(1, online_cpus / std::max(1, launch.local_world_size));
}
}  // namespace

std::optional<int> detail::default_intra_op_threads(const LaunchEnvironment& launch, const EnvironmentVariables& env,
                                                    int allowed_cpus, int online_cpus) {
  if (launch.launcher != Launcher::Slurm && launch.launcher != Launcher::OpenMPI) return std::nullopt;
  if (lookup(env, env_var::kOmpNumThreads)) return std::nullopt;  // the user's (or the site's) choice
  if (launch.launcher == Launcher::Slurm) {
    constexpr const char* kFix = "srun sets it from --cpus-per-task; unset it, or export OMP_NUM_THREADS.";
    if (auto per_task = read_int(env, {"SLURM_CPUS_PER_TASK"}, kFix)) {
      ACCELERATE_CHECK(*per_task >= 1, ConfigError, "SLURM_CPUS_PER_TASK=", *per_task, " is not a CPU count; ", kFix);
      // The job's --cpus-per-task also reaches a step that srun laid out otherwise (`srun -n 2` in a job of one
      // task of 2 CPUs): never more than the CPUs this task is bound to, or than its share of an unbound node.
      return std::min(*per_task, cpu_share(launch, allowed_cpus, online_cpus));
    }
  }
  return cpu_share(launch, allowed_cpus, online_cpus);
}

}  // namespace accelerate
