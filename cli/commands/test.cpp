// `accelerate-cpp test`: launches accelerate-cpp-check on the configured processes (HF's `accelerate test`).
#include <accelerate/error.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

#include "commands/commands.hpp"
#include "commands/flags.hpp"
#include "config/hf_config.hpp"
#include "launcher/launch_plan.hpp"

namespace accelerate::cli {

Action register_test(CLI::App& app) {
  auto options = std::make_shared<launcher::LaunchOptions>();
  auto* cmd = app.add_subcommand(
      "test",
      "Check the setup: process state, every collective, data sharding, a short training run vs 1 process, RNG.");
  optional_option(cmd, "config_file", options->config_file,
                  "Config file to test (default: " + default_config_path() + ", if it exists)");
  optional_option(cmd, "num_processes", options->num_processes,
                  "Number of processes (default: the config file's, else 1)");
  cmd->add_flag(names("cpu"), options->cpu, "Force CPU (Gloo) even when CUDA is available (default off)");
  optional_option(cmd, "timeout", options->timeout_s, "Collective timeout in seconds (default 60)");
  return [options]() -> int {
    auto& o = *options;
    o.program = sibling_program("accelerate-cpp-check");
    ACCELERATE_CHECK(std::filesystem::exists(o.program), LaunchError, "test: ", o.program,
                     " is missing; it is built and installed with accelerate-cpp (target accelerate_check).");
    if (!o.timeout_s) o.timeout_s = 60;  // a broken setup should fail in a minute, not hang
    const int rc = run_launch(o);
    std::cout << (rc == 0 ? "accelerate-cpp test: passed\n" : "accelerate-cpp test: FAILED (see above)\n");
    return rc;
  };
}

}  // namespace accelerate::cli
