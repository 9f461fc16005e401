// Each subcommand registers itself on the CLI11 app and returns the action to run once parsing succeeded.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace accelerate::cli {

using Action = std::function<int()>;

Action register_launch(CLI::App& app);

}  // namespace accelerate::cli
