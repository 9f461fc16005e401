// `accelerate-cpp launch` when its workers or the launcher itself must be ended: signals forwarded, workers that die
// with a SIGKILLed launcher, children that ignore SIGTERM or belong to a wrapper script, and a worker that not even
// SIGKILL can end (frozen). Every run has a deadline; none may leave a process behind.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <thread>

#include "launcher_helpers.hpp"

namespace fs = std::filesystem;
using namespace accelerate::testing;

// Issue 10, case 9: a worker's child that ignores SIGTERM must not outlive the launcher.
TEST(LaunchFailure, NoDescendantOutlivesTheLauncher) {
  PidDir pids;
  const std::string script =
      "if [ \"$RANK\" = 0 ]; then ( trap '' TERM; exec sleep 1000 ) & echo $! > \"$PID_DIR/grandchild.pid\"; "
      "sleep 100; else sleep 1; exit 3; fi";
  auto r = launch({"--num_processes", "2", "--grace_period", "1", "sh", "-c", script}, {{"PID_DIR", pids.str()}});
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_LT(r.seconds, 15.0);
  int grandchild = 0;
  std::ifstream(pids.str() + "/grandchild.pid") >> grandchild;
  ASSERT_GT(grandchild, 0) << r.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(process_alive(grandchild)) << "the SIGTERM-ignoring grandchild outlived the launcher";
  if (process_alive(grandchild)) ::kill(grandchild, SIGKILL);
}

TEST(LaunchFailure, SigtermToLauncherReachesEveryWorker) {
  PidDir pids;
  auto r = launch_sleepers_then_signal(pids, SIGTERM);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_TRUE(contains(r.output, "received SIGTERM")) << r.output;
  EXPECT_EQ(pids.pids().size(), 2u);
  pids.expect_all_gone();
}

TEST(LaunchFailure, WorkersDieWithAKilledLauncher) {
  PidDir pids;
  auto r = launch_sleepers_then_signal(pids, SIGKILL);  // no chance to forward: PR_SET_PDEATHSIG must do it
  EXPECT_FALSE(r.timed_out) << r.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pids.expect_all_gone();
}

namespace {
/// A cgroup-v1 freezer group of our own (as `docker pause` uses), or an empty path where none can be made.
struct FreezerGroup {
  fs::path path;
  FreezerGroup() {
    const fs::path root = "/sys/fs/cgroup/freezer";
    std::error_code e;
    if (!fs::exists(root / "freezer.state", e) && !fs::exists(root / "tasks", e)) return;
    const auto p = root / ("accelerate_test_" + std::to_string(::getpid()));
    if (fs::create_directory(p, e) && fs::exists(p / "freezer.state", e)) path = p;
  }
  bool freeze(int pid) const {
    std::ofstream(path / "cgroup.procs") << pid << std::endl;
    std::ofstream(path / "freezer.state") << "FROZEN" << std::endl;
    std::string state;
    for (int i = 0; i < 100 && state != "FROZEN"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::ifstream(path / "freezer.state") >> state;
    }
    return state == "FROZEN";
  }
  ~FreezerGroup() {
    if (path.empty()) return;
    std::ofstream(path / "freezer.state") << "THAWED" << std::endl;  // its pending SIGKILL then ends it
    for (int i = 0; i < 100; ++i) {
      std::error_code e;
      if (fs::remove(path, e)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};
}  // namespace

TEST(LaunchFailure, AWorkerThatCannotBeKilledIsNamedAndLeftBehind) {
  FreezerGroup freezer;
  if (freezer.path.empty()) GTEST_SKIP() << "no cgroup-v1 freezer that this user can write";
  PidDir pids;
  bool frozen = false;
  auto r = run({kLauncher, "launch", "--num_processes", "2", "--timeout", "4", kWorker, "train"},
               {{"PID_DIR", pids.str()}}, std::chrono::seconds(60), [&](int) {
                 for (int i = 0; i < 600 && (pids.pid_of(0) == 0 || pids.pid_of(1) == 0); ++i) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 }
                 std::this_thread::sleep_for(std::chrono::milliseconds(1500));
                 frozen = freezer.freeze(pids.pid_of(1));
               });
  ASSERT_TRUE(frozen) << r.output;
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_NE(r.exit_code, 0) << r.output;
  // The timeout (4 s), then SIGTERM -> SIGKILL (5 s) and the wait for the kill (5 s), with room for a slow machine.
  EXPECT_LT(r.seconds, 30.0) << r.output;
  expect_output_has(r.output, {"rank 1 (local rank 1, pid " + std::to_string(pids.pid_of(1)) + ") could not be killed",
                               "root cause: rank 1"});
}

// A wrapper script's plain child (torchrun leaves it running): no process of the job outlives a SIGKILLed launcher.
TEST(LaunchFailure, AWrappersChildrenDieWithAKilledLauncher) {
  PidDir pids;
  const std::string script = "sleep 1000 & echo $! > \"$PID_DIR/child$RANK.pid\"; wait";
  auto r = run({kLauncher, "launch", "--num_processes", "2", "sh", "-c", script}, {{"PID_DIR", pids.str()}},
               std::chrono::seconds(30), [&](int pid) {
                 for (int i = 0; i < 300 && pids.pids().size() < 2; ++i) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 }
                 ::kill(pid, SIGKILL);
               });
  EXPECT_FALSE(r.timed_out) << r.output;
  ASSERT_EQ(pids.pids().size(), 2u) << r.output;
  for (int i = 0; i < 40 && (process_alive(pids.pids()[0]) || process_alive(pids.pids()[1])); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int pid : pids.pids()) {
    EXPECT_FALSE(process_alive(pid)) << "a worker's child (pid " << pid << ") outlived the SIGKILLed launcher";
    if (process_alive(pid)) ::kill(pid, SIGKILL);
  }
}
