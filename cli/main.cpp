// accelerate-cpp: registers the subcommands and maps errors to exit codes. The only place that catches.
#include <accelerate/error.hpp>
#include <accelerate/exit_code.hpp>
#include <accelerate/version.hpp>

#include <algorithm>
#include <iostream>
#include <map>

#include "commands/commands.hpp"
#include "commands/flags.hpp"

namespace {

/// "Did you mean ...?" for the first argument that is neither a subcommand nor a flag of the chosen one.
std::string suggestion(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> subcommands;
  for (auto* sub : app.get_subcommands({})) subcommands.push_back(sub->get_name());
  if (argc < 2) return "";
  const std::string first = argv[1];
  if (std::find(subcommands.begin(), subcommands.end(), first) == subcommands.end()) {
    if (first.rfind("-", 0) == 0) return "";
    const auto best = accelerate::cli::nearest(first, subcommands);
    return best.empty() ? "" : "Did you mean `accelerate-cpp " + best + "`?";
  }
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) continue;
    const auto name = arg.substr(0, arg.find('='));
    const auto best = accelerate::cli::nearest_flag(*app.get_subcommand(first), name);
    if (!best.empty() && best != name) return "Did you mean `" + best + "` (instead of `" + name + "`)?";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"accelerate-cpp: run LibTorch training on one CPU, many processes, GPUs and nodes", "accelerate-cpp"};
  app.require_subcommand(1);
  app.set_version_flag("--version", accelerate::kVersion);
  // The same first words as every other error of ours, so a user (or a log search) sees one format.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("accelerate-cpp: error: ") + e.what() + "\nRun with --help for more information.\n";
  });
  std::map<std::string, accelerate::cli::Action> actions = {
      {"config", accelerate::cli::register_config(app)},
      {"env", accelerate::cli::register_env(app)},
      {"launch", accelerate::cli::register_launch(app)},
      {"test", accelerate::cli::register_test(app)},
      {"estimate-memory", accelerate::cli::register_estimate(app)}};
  std::vector<std::string> args(argv, argv + argc);
  accelerate::cli::drop_program_separator(app, args);
  std::vector<char*> kept;
  for (auto& a : args) kept.push_back(a.data());
  argc = static_cast<int>(kept.size());
  kept.push_back(nullptr);
  argv = kept.data();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the error and the usage; non-zero for errors, 0 for --help
    if (rc == 0) return 0;
    if (const auto hint = suggestion(app, argc, argv); !hint.empty()) std::cerr << hint << std::endl;
    return 2;  // a usage error, whatever CLI11's own code for it (104 for a value that does not convert)
  }
  // A library below us (yaml-cpp, the standard library) may fail in a way no check foresaw: still a message and an
  // exit code, never an abort.
  return accelerate::run_main("accelerate-cpp: error: ", [&] {
    for (auto& [name, action] : actions) {
      if (app.got_subcommand(name)) return action();
    }
    return 0;
  });
}
