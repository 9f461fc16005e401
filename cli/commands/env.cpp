// `accelerate-cpp env`: a Markdown report to paste into a bug report. The LibTorch/CUDA half comes from
// accelerate-cpp-check --report, so the CLI itself never loads LibTorch.
#include <accelerate/error.hpp>
#include <accelerate/platform.hpp>
#include <accelerate/version.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <sys/utsname.h>
#include <unistd.h>

#include "commands/commands.hpp"
#include "commands/flags.hpp"
#include "config/hf_config.hpp"

namespace accelerate::cli {
namespace {

std::string first_match(const std::string& file, const std::string& prefix) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto value = line.substr(line.find(':') + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(value.begin());
      return value;
    }
  }
  return "unknown";
}

std::string gib_from_kb(const std::string& kb_text) {
  try {
    std::ostringstream s;
    s.precision(1);
    s << std::fixed << std::stod(kb_text) / (1024.0 * 1024.0) << " GiB";
    return s.str();
  } catch (const std::exception&) {
    return "unknown";
  }
}

/// Output of a command, or nullopt when it could not run or failed.
std::optional<std::string> capture(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return std::nullopt;
  std::string out;
  std::array<char, 4096> buffer{};
  while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) out.append(buffer.data(), n);
  if (::pclose(pipe.release()) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string sibling_program(const std::string& name) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? name : (self.parent_path() / name).string();
}

Action register_env(CLI::App& app) {
  auto config_file = std::make_shared<std::optional<std::string>>();
  auto* cmd = app.add_subcommand("env", "Print versions, hardware, platform and config as Markdown for bug reports.");
  optional_option(cmd, "config_file", *config_file, "Config file to report (default: " + default_config_path() + ")");
  return [config_file]() -> int {
    struct utsname u {};
    ::uname(&u);
    const auto platform = detect_platform();
    std::ostringstream md;
    md << "Copy-and-paste the text below in your GitHub issue.\n\n"
       << "- `accelerate-cpp` version: " << kVersion << "\n"
       << "- OS: " << u.sysname << " " << u.release << " " << u.machine << "\n"
       << "- Detected platform: " << to_string(platform.platform) << " (default project_dir: " << platform.output_dir
       << ")\n"
       << "- CPU: " << first_match("/proc/cpuinfo", "model name") << " (" << std::thread::hardware_concurrency()
       << " logical cores)\n"
       << "- RAM: " << gib_from_kb(first_match("/proc/meminfo", "MemTotal")) << " total, "
       << gib_from_kb(first_match("/proc/meminfo", "MemAvailable")) << " available\n";
    const auto check = sibling_program("accelerate-cpp-check");
    if (auto runtime = capture("'" + check + "' --report 2>/dev/null")) {
      md << *runtime;
    } else {
      md << "- LibTorch: unknown (" << check << " --report did not run)\n";
    }
    std::ostringstream notes;
    std::optional<std::string> found;
    if (std::error_code ec; !*config_file) {
      found = existing_default_config(notes);
    } else if (std::filesystem::exists(**config_file, ec)) {
      found = *config_file;
    }
    const auto path = config_file->value_or(default_config_path());
    if (!notes.str().empty()) md << "- " << notes.str();
    if (found) {
      md << "- `accelerate-cpp` config file: " << path << "\n";
      std::ostringstream warnings;
      std::istringstream lines(describe(read_config(path, warnings)));
      for (std::string line; std::getline(lines, line);) md << "  - " << line << "\n";
      if (!warnings.str().empty()) md << "  - warnings: " << warnings.str();
    } else {
      md << "- `accelerate-cpp` config file: none at " << path
         << " (defaults; create one with `accelerate-cpp config`)\n";
    }
    std::cout << md.str();
    return 0;
  };
}

}  // namespace accelerate::cli
