// accelerate-cpp: registers the subcommands and maps errors to exit codes. The only place that catches.
#include <accelerate/error.hpp>
#include <accelerate/version.hpp>

#include <iostream>

#include "commands/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"accelerate-cpp: run LibTorch training on one CPU, many processes, GPUs and nodes", "accelerate-cpp"};
  app.require_subcommand(1);
  app.set_version_flag("--version", accelerate::kVersion);
  auto launch = accelerate::cli::register_launch(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // prints the error and the usage; non-zero for errors, 0 for --help
  }
  try {
    if (app.got_subcommand("launch")) return launch();
  } catch (const accelerate::ConfigError& e) {
    std::cerr << "accelerate-cpp: error: " << e.what() << std::endl;
    return 2;
  } catch (const accelerate::Error& e) {
    std::cerr << "accelerate-cpp: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
