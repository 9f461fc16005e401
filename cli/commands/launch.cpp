// `accelerate-cpp launch [flags] PROGRAM [ARGS...]`: like `torchrun --no-python`, with HF Accelerate's flags.
#include <accelerate/environment.hpp>
#include <accelerate/error.hpp>
#include <accelerate/preemption.hpp>
#include <accelerate/settings.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include <sys/resource.h>

#include "commands/commands.hpp"
#include "commands/flags.hpp"
#include "config/hf_config.hpp"
#include "detail/launch_threads.hpp"
#include "launcher/launch_plan.hpp"
#include "launcher/net.hpp"
#include "launcher/supervisor.hpp"

namespace accelerate::cli {

Action register_launch(CLI::App& app) {
  auto options = std::make_shared<launcher::LaunchOptions>();
  auto* cmd = app.add_subcommand("launch", "Run PROGRAM as N processes with the torchrun/HF environment set.");
  cmd->prefix_command();  // everything from PROGRAM on belongs to the program
  auto& o = *options;
  optional_option(cmd, "num_processes", o.num_processes, "Total number of processes over all machines (default 1)");
  cmd->add_flag(names("cpu"), o.cpu, "Force CPU (Gloo) even when CUDA is available (default off)");
  optional_option(cmd, "num_machines", o.num_machines, "Number of machines (default 1)");
  optional_option(cmd, "machine_rank", o.machine_rank, "Rank of this machine, 0..num_machines-1 (default 0)");
  optional_option(cmd, "main_process_ip", o.main_process_ip,
                  "Address of machine 0 (default 127.0.0.1; required with several machines)");
  optional_option(cmd, "main_process_port", o.main_process_port,
                  "Rendezvous port on machine 0 (default: a free port on one machine, 29500 on several; 0: free)");
  optional_option(cmd, "mixed_precision", o.mixed_precision,
                  "no, fp16 or bf16, as ACCELERATE_MIXED_PRECISION (default: unset, the program decides; no)");
  optional_option(cmd, "gradient_accumulation_steps", o.gradient_accumulation_steps,
                  "Passed as ACCELERATE_GRADIENT_ACCUMULATION_STEPS (default: unset, the program decides; 1)");
  optional_option(cmd, "zero_stage", o.zero_stage,
                  "ZeRO stage: 0 replicated, 1 optimizer state sharded, 2 gradients too, 3 parameters too; as "
                  "ACCELERATE_CPP_ZERO_STAGE "
                  "(default: unset, the program decides; 0)");
  optional_option(cmd, "num_cpu_threads_per_process", o.num_cpu_threads_per_process,
                  "OMP_NUM_THREADS for each worker (default: cores / local processes, unless OMP_NUM_THREADS is set)");
  optional_option(cmd, "gpu_ids", o.gpu_ids, "GPUs to use, e.g. 0,1, set as CUDA_VISIBLE_DEVICES (default: all)");
  optional_option(cmd, "timeout", o.timeout_s,
                  "Rendezvous and collective timeout in seconds, as ACCELERATE_CPP_TIMEOUT (default 600)");
  optional_option(
      cmd, "config_file", o.config_file,
      "HF Accelerate YAML config (default: the file `accelerate-cpp config` writes, if present); flags win");
  cmd->add_option(names("grace_period"), o.grace_period_s,
                  "After SIGTERM or SIGUSR1 (a preemption notice, forwarded to the workers): seconds they get to save "
                  "a checkpoint and exit before SIGKILL; other stops wait at most 5 s (default 25)");
  cmd->add_option(names("max_restarts"), o.max_restarts,
                  "Start the whole group again this many times when a worker fails, as torchrun "
                  "(TORCHELASTIC_RESTART_COUNT counts them; default 0)");
  cmd->add_flag(names("debug"), o.debug, "Debug mode: ACCELERATE_DEBUG_MODE=true for the workers (default off)");
  auto no_prefix = std::make_shared<bool>(false);
  cmd->add_flag(names("no_rank_prefix"), *no_prefix,
                "Do not prefix worker output lines with [rankN] (default off: prefixed)");

  return [options, cmd, no_prefix]() -> int {
    auto& o = *options;
    o.rank_prefix = !*no_prefix;
    auto remaining = cmd->remaining();
    ACCELERATE_CHECK(!remaining.empty(), ConfigError,
                     "launch: no PROGRAM given. Usage: accelerate-cpp launch [flags] PROGRAM [ARGS...]");
    if (!remaining[0].empty() && remaining[0][0] == '-') {
      const auto flag = remaining[0].substr(0, remaining[0].find('='));
      const auto hint = nearest_flag(*cmd, flag);
      throw ConfigError(detail::concat("launch: unknown flag '", flag, "'.",
                                       hint.empty() ? "" : " Did you mean '" + hint + "'?",
                                       " See `accelerate-cpp launch --help` for the flags."));
    }
    o.program = remaining[0];
    o.program_args.assign(remaining.begin() + 1, remaining.end());
    return run_launch(o);
  };
}

void drop_program_separator(const CLI::App& app, std::vector<std::string>& args) {
  if (args.size() < 2 || args[1] != "launch") return;
  const auto* launch = app.get_subcommand("launch");
  for (size_t i = 2; launch && i < args.size(); ++i) {
    const auto& arg = args[i];
    if (arg == "--") {
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
    if (arg.empty() || arg[0] != '-') return;  // PROGRAM
    const auto* option = launch->get_option_no_throw(arg.substr(0, arg.find('=')));
    // A flag that takes a value, given as `--flag value`: skip the value.
    if (option && option->get_items_expected_max() > 0 && arg.find('=') == std::string::npos) ++i;
  }
}

namespace {

/// torchrun's --max_restarts: a failed group is stopped as a whole (supervise does) and started again; the program
/// sees the count in TORCHELASTIC_RESTART_COUNT and resumes from its checkpoints. A group that saved and exited as
/// preempted (without the launcher being signalled: its workers were) is restarted without using one of the
/// restarts, after a pause, kPreemptedRestarts times in a row at most (a program that always exits with 75 must
/// not loop forever).
int run_with_restarts(launcher::LaunchPlan& plan, const launcher::LaunchOptions& o,
                      const launcher::SupervisorOptions& supervision) {
  constexpr int kPreemptedRestarts = 10;
  for (int attempt = 0, failures = 0, preempted = 0;; ++attempt) {
    for (auto& w : plan.workers) w.env[env_var::kRestartCount] = std::to_string(attempt);
    const auto result = launcher::supervise(plan.workers, supervision);
    const bool again = result.exit_code != 0 && !result.interrupted && o.max_restarts > 0;
    if (result.exit_code == kExitPreempted && (!again || preempted >= kPreemptedRestarts)) {
      std::fprintf(stderr,
                   "accelerate-cpp launch: %s; run the same command again to resume (with --resume_from_checkpoint "
                   "latest where the program takes it).\n",
                   again ? "preempted too often in a row: not restarting again" : "exiting with 75");
    }
    if (!again) return result.exit_code;
    if (result.exit_code == kExitPreempted) {
      if (preempted++ >= kPreemptedRestarts) return result.exit_code;
      std::fprintf(stderr, "accelerate-cpp launch: restarting all %zu worker(s) after a preemption (not counted).\n",
                   plan.workers.size());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    } else {
      preempted = 0;
      if (failures >= o.max_restarts) return result.exit_code;
      std::fprintf(stderr, "accelerate-cpp launch: restarting all %zu worker(s) (restart %d of %d).\n",
                   plan.workers.size(), ++failures, o.max_restarts);
    }
    // A fresh rendezvous port unless one was given: the old one may still be held by the dead group's sockets.
    if (!o.main_process_port && plan.world_size > 1) {
      const int port = launcher::pick_free_port();
      for (auto& w : plan.workers) w.env[env_var::kMasterPort] = std::to_string(port);
    }
  }
}

}  // namespace

int run_launch(launcher::LaunchOptions& o) {
  // --config_file, else the default file when there is one (as HF's launch does).
  if (!o.config_file) o.config_file = existing_default_config(std::cerr);
  if (o.config_file) launcher::merge_config_file(o, *o.config_file);
  const auto env = current_environment();
  const char* path = std::getenv("PATH");
  const auto program = launcher::resolve_program(o.program, path ? path : "");
  // The CPUs this launcher may run on (srun's or taskset's binding) are what its workers share.
  auto plan = launcher::make_plan(o, program, &launcher::pick_free_port, detail::allowed_cpus(), env);
  if (plan.hosts_rendezvous && plan.world_size > 1) launcher::ensure_port_free(plan.master_port);
  // The launcher holds two pipes per local worker: refuse up front what would fail halfway through the start
  // (with workers already running) as "Too many open files".
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const auto needed = static_cast<rlim_t>(2 * plan.local_world_size + 32);
    ACCELERATE_CHECK(needed <= files.rlim_cur, ConfigError, "launch: ", plan.local_world_size,
                     " processes on this machine need about ", needed,
                     " open files in the launcher, but the limit "
                     "is ",
                     files.rlim_cur, " (ulimit -n). Use fewer processes per machine, or raise the limit.");
  }
  // Ends the workers' children too if this launcher is SIGKILLed (the workers themselves die by PDEATHSIG).
  launcher::Reaper reaper;
  launcher::SupervisorOptions supervision;
  supervision.reaper = &reaper;
  supervision.rank_prefix = o.rank_prefix;
  supervision.grace_period_s = o.grace_period_s;
  return run_with_restarts(plan, o, supervision);
}

}  // namespace accelerate::cli
