// What the launcher's end-to-end tests share: where the programs are, a folder the workers write their pids to,
// and `launch` with a deadline. Every run has one; a test checks that no worker outlives the launcher.
#pragma once

#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "subprocess.hpp"

namespace accelerate::testing {

inline const std::string kBin = ACCELERATE_TEST_BIN_DIR;
inline const std::string kLauncher = kBin + "/accelerate-cpp";
inline const std::string kWorker = kBin + "/failure_worker";

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

inline void expect_output_has(const std::string& output, std::initializer_list<std::string> needles) {
  for (const auto& needle : needles) EXPECT_TRUE(contains(output, needle)) << "missing: " << needle << "\n" << output;
}

class PidDir {
 public:
  PidDir()
      : path_(std::filesystem::temp_directory_path() /
              ("accelerate_pids_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    std::filesystem::create_directories(path_);
  }
  ~PidDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }
  /// The pid rank `rank` wrote, or 0 while it has not.
  int pid_of(int rank) const {
    int pid = 0;
    std::ifstream(path_ / ("rank" + std::to_string(rank) + ".pid")) >> pid;
    return pid;
  }
  std::vector<int> pids() const {
    std::vector<int> out;
    for (const auto& f : std::filesystem::directory_iterator(path_)) {
      int pid = 0;
      std::ifstream(f.path()) >> pid;
      if (pid > 0) out.push_back(pid);
    }
    return out;
  }
  void expect_all_gone() const {
    for (int pid : pids()) EXPECT_FALSE(process_alive(pid)) << "worker pid " << pid << " outlived the launcher";
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

inline RunResult launch(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                        std::chrono::seconds deadline = std::chrono::seconds(60)) {
  args.insert(args.begin(), {kLauncher, "launch"});
  return run(args, env, deadline);
}

/// Launches two sleeping workers, waits until both wrote their pid, then sends `sig` to the launcher.
inline RunResult launch_sleepers_then_signal(const PidDir& pids, int sig) {
  return run({kLauncher, "launch", "--num_processes", "2", kWorker, "sleep"}, {{"PID_DIR", pids.str()}},
             std::chrono::seconds(30), [&](int pid) {
               for (int i = 0; i < 300 && pids.pids().size() < 2; ++i) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
               }
               ::kill(pid, sig);
             });
}

}  // namespace accelerate::testing
