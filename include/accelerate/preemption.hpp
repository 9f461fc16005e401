// Preemption: a scheduler stopping a job (Kubernetes, SLURM, a spot instance, a notebook's session end) first sends
// SIGTERM, or the signal SLURM users choose with --signal (usually SIGUSR1), and kills the job some seconds later.
// A training loop that checks Accelerator::check_preemption() once per step saves a checkpoint on every process
// at the same step and exits with kExitPreempted; `accelerate-cpp launch` forwards the signal, gives the workers
// --grace_period seconds, and exits with the same code (docs/preemption.md).
#pragma once

namespace accelerate {

/// The exit code of a program that was preempted, saved its state and can be resumed: EX_TEMPFAIL of sysexits.h
/// ("a temporary failure; try again later"). `accelerate-cpp launch` exits with it when every worker did, and its
/// --max_restarts does not count it as a failure.
inline constexpr int kExitPreempted = 75;

}  // namespace accelerate
