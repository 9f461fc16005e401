// Each subcommand registers itself on the CLI11 app and returns the action to run once parsing succeeded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace accelerate::launcher {
struct LaunchOptions;
}

namespace accelerate::cli {

using Action = std::function<int()>;

Action register_launch(CLI::App& app);
Action register_config(CLI::App& app);
Action register_env(CLI::App& app);
Action register_test(CLI::App& app);
Action register_estimate(CLI::App& app);

/// torchrun's and HF's `launch [flags] -- PROGRAM ARGS`: drops that `--` from `args` (argv) when it stands where
/// PROGRAM would (CLI11 would take it as the end of every command's options and refuse what follows). A `--` after
/// PROGRAM is the program's and stays.
void drop_program_separator(const CLI::App& app, std::vector<std::string>& args);

/// Runs a launch (config file merged in, program resolved, workers supervised); `test` reuses it.
int run_launch(launcher::LaunchOptions& options);

/// A program installed next to accelerate-cpp (accelerate-cpp-check).
std::string sibling_program(const std::string& name);

}  // namespace accelerate::cli
