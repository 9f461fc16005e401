// How many intra-op threads a process started by srun or mpirun should use (launchers that set OMP_NUM_THREADS
// themselves, ours and torchrun, are left alone).
#pragma once

#include <accelerate/environment.hpp>

#include <optional>

namespace accelerate::detail {

/// The CPUs this process may run on: its affinity mask (srun's, mpirun's or taskset's binding), else the machine's
/// count; at least 1.
int allowed_cpus();

/// The intra-op thread count for this process, or nullopt to keep LibTorch's default. Only under srun or mpirun
/// with OMP_NUM_THREADS unset: the CPUs this process may use, which are `allowed_cpus` (its affinity mask) when
/// that is smaller than `online_cpus` (srun or mpirun bound the process), else the machine's `online_cpus` shared
/// between its `launch.local_world_size` processes; SLURM_CPUS_PER_TASK, when set, when it is fewer; at least 1.
/// Without it every process of a machine starts one thread per core (4 processes on 4 cores: 16 threads), which
/// torchrun and `accelerate launch` avoid by exporting OMP_NUM_THREADS. Throws ConfigError when
/// SLURM_CPUS_PER_TASK is not a positive integer.
std::optional<int> default_intra_op_threads(const LaunchEnvironment& launch, const EnvironmentVariables& env,
                                            int allowed_cpus, int online_cpus);

}  // namespace accelerate::detail
