// Reading the launch environment: who started this process, and which rank of which world it is.
// Pure functions of an environment map, so every launcher flavour is unit-testable without spawning anything.
#pragma once

#include <map>
#include <string>

namespace accelerate {

/// Who launched this process, in detection order.
enum class Launcher {
  None,        ///< started alone: a world of one
  Accelerate,  ///< `accelerate-cpp launch` (sets the torchrun variables plus ACCELERATE_CPP_LAUNCHED=1)
  Torchrun,    ///< torchrun / torch.distributed.run: RANK, WORLD_SIZE, LOCAL_RANK, ...
  OpenMPI,     ///< mpirun from Open MPI: OMPI_COMM_WORLD_*
  Slurm,       ///< srun: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODELIST
};

std::string to_string(Launcher launcher);

using EnvironmentVariables = std::map<std::string, std::string>;

/// A snapshot of this process's environment.
EnvironmentVariables current_environment();

/// Ranks, world and rendezvous point, as detected from the environment.
struct LaunchEnvironment {
  Launcher launcher = Launcher::None;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  int node_rank = 0;
  int num_nodes = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;       ///< 0 when the world has one process
  bool agent_store = false;  ///< torchelastic already hosts the TCPStore: rank 0 connects as a client too
  /// TORCHELASTIC_RESTART_COUNT: which start of the group this is. torchrun's store outlives a restart, so every
  /// key of ours lives under the attempt's own prefix (as torch's env:// rendezvous does).
  int restart_count = 0;
  /// ACCELERATE_CPP_ERROR_FILE (set by `accelerate-cpp launch` for each worker): where a failed collective
  /// records, as JSON, which ranks it was waiting for, so the launcher can blame the rank that stopped answering
  /// rather than the one that timed out. Empty: not recorded.
  std::string error_file;
  /// GLOO_SOCKET_IFNAME: the network interface Gloo uses; empty: loopback on one machine, else the interface
  /// that routes to master_addr.
  std::string gloo_socket_ifname;
};

/// Detects the launcher and reads ranks from `env`: ours, then torchrun, then Open MPI, then SLURM, else a
/// single process. Throws ConfigError naming the variable and the fix when the values are inconsistent
/// (RANK >= WORLD_SIZE, MASTER_PORT missing for a world > 1, non-numeric values, ...).
LaunchEnvironment detect_launch_environment(const EnvironmentVariables& env);

/// The first host of a SLURM node list: "node[03-05,9],gpu1" -> "node03".
std::string first_host_in_slurm_nodelist(const std::string& nodelist);

}  // namespace accelerate
