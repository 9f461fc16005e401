// Test helper: run a command with a deadline and capture its output. Never hangs: past the deadline the
// process group is killed and timed_out is set.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace accelerate::testing {

struct RunResult {
  int exit_code = -1;  ///< exit status, or 128 + signal
  std::string output;  ///< stdout and stderr interleaved
  double seconds = 0;
  bool timed_out = false;
};

/// `on_started(pid)` runs once the child is started (e.g. to signal it later).
RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
              std::chrono::seconds deadline = std::chrono::seconds(60),
              const std::function<void(int pid)>& on_started = {});

bool process_alive(int pid);

/// In a forked child: replaces it with argv (PATH searched), or exits 127.
[[noreturn]] void exec_or_exit(const std::vector<std::string>& argv);

}  // namespace accelerate::testing
