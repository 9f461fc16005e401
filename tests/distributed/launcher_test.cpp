// `accelerate-cpp launch` end to end: env contract, output prefixes, failure semantics (a rank that exits,
// is killed, or hangs), preemption, and bad input (the kill paths: launcher_kill_test.cpp). Every run has a deadline;
// every test checks that no worker outlives the launcher.
#include <accelerate/error.hpp>

#include <arpa/inet.h>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "launcher_helpers.hpp"

namespace fs = std::filesystem;
using namespace accelerate::testing;

namespace {
/// The step at which `rank` printed "preempted at step N" first (failure_worker's preempt modes), or -1.
int preempted_step(const std::string& output, int rank) {
  const std::string key = "[rank" + std::to_string(rank) + "]: preempted at step ";
  const auto at = output.find(key);
  return at == std::string::npos ? -1 : std::atoi(output.c_str() + at + key.size());
}

/// Two ranks train (failure_worker train); once both are under way, rank `stopped` gets SIGSTOP: it stays alive
/// but answers nothing, not even the rendezvous store when it hosts it.
RunResult launch_training_then_stop(const PidDir& pids, int stopped, int timeout_s) {
  return run({kLauncher, "launch", "--num_processes", "2", "--timeout", std::to_string(timeout_s), "--grace_period",
              "2", kWorker, "train"},
             {{"PID_DIR", pids.str()}, {"ACCELERATE_CPP_STALL_WARNING", "1"}}, std::chrono::seconds(90), [&](int) {
               for (int i = 0; i < 600 && (pids.pid_of(0) == 0 || pids.pid_of(1) == 0); ++i) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(50));
               }
               std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a few hundred steps in
               ::kill(pids.pid_of(stopped), SIGSTOP);
             });
}

/// A loopback port that is bound (so no one else takes it); listening on it is up to the caller.
std::pair<int, std::string> reserve_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return {fd, std::to_string(ntohs(addr.sin_port))};
}
}  // namespace

TEST(Launch, SetsTheTorchrunEnvironmentAndPrefixesRanks) {
  auto r = launch({"--num_processes", "2", "--mixed_precision", "fp16", "--gradient_accumulation_steps", "4", "env"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line : {"[rank0]: RANK=0", "[rank1]: RANK=1", "[rank1]: LOCAL_RANK=1", "[rank0]: WORLD_SIZE=2",
                           "[rank0]: LOCAL_WORLD_SIZE=2", "[rank1]: GROUP_RANK=0", "[rank0]: MASTER_ADDR=127.0.0.1",
                           "[rank0]: ACCELERATE_MIXED_PRECISION=fp16",
                           "[rank1]: ACCELERATE_GRADIENT_ACCUMULATION_STEPS=4", "[rank0]: TORCHELASTIC_RUN_ID="}) {
    EXPECT_TRUE(contains(r.output, line)) << line << "\n" << r.output;
  }
  auto plain = launch({"--num_processes", "2", "--no_rank_prefix", "env"});
  EXPECT_FALSE(contains(plain.output, "[rank")) << plain.output;
  EXPECT_TRUE(contains(plain.output, "\nRANK=1") || plain.output.rfind("RANK=1", 0) == 0);
}

TEST(Launch, HyphenatedFlagsWorkToo) {
  auto r = launch({"--num-processes", "2", "--no-rank-prefix", "env"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "WORLD_SIZE=2"));
}

TEST(Launch, ProgramArgumentsPassThrough) {
  auto r = launch({"--num_processes", "1", "sh", "-c", "echo args:$0:$1", "a b", "--flag"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "args:a b:--flag")) << r.output;
}

TEST(LaunchFailure, RankExitsWithCode3) {
  PidDir pids;
  auto r = launch({"--num_processes", "2", kWorker, "exit3"}, {{"PID_DIR", pids.str()}});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_LT(r.seconds, 10.0);
  EXPECT_TRUE(contains(r.output, "root cause: rank 1")) << r.output;
  EXPECT_TRUE(contains(r.output, "exited with code 3")) << r.output;
  EXPECT_TRUE(contains(r.output, "| rank 1: failing on purpose")) << r.output;  // its stderr tail
  EXPECT_EQ(pids.pids().size(), 2u);
  pids.expect_all_gone();
}

TEST(LaunchFailure, RankKilledBySigkill) {
  PidDir pids;
  auto r = launch({"--num_processes", "4", kWorker, "sigkill"}, {{"PID_DIR", pids.str()}});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  EXPECT_LT(r.seconds, 10.0);
  EXPECT_TRUE(contains(r.output, "root cause: rank 1")) << r.output;
  EXPECT_TRUE(contains(r.output, "SIGKILL")) << r.output;
  EXPECT_EQ(pids.pids().size(), 4u);
  pids.expect_all_gone();
}

TEST(LaunchFailure, HungPeerEndsInACollectiveTimeout) {
  // Rank 1 is alive but never joins the collective: rank 0 times out after the configured 2 s, names the
  // operation, and the launcher stops rank 1, which it blames: rank 0 only timed out waiting for it.
  PidDir pids;
  auto r = launch({"--num_processes", "2", "--timeout", "2", kWorker, "hang"}, {{"PID_DIR", pids.str()}});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 2 + 10.0);
  EXPECT_TRUE(contains(r.output, "root cause: rank 1")) << r.output;
  EXPECT_TRUE(contains(r.output, "stopped answering: rank 0 timed out in collective #2 (reduce) waiting for it"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "reduce failed on rank 0 of 2")) << r.output;
  EXPECT_TRUE(contains(r.output, "(stopped by the launcher)")) << r.output;
  pids.expect_all_gone();
}

/// Freezes rank `stopped` mid-training (timeout 4 s, grace period 2 s): the other rank must end on its own within
/// about the timeout plus the grace period, exit 1 through our error (no abort, no c10 stack trace), and the
/// launcher must blame and kill the frozen rank.
void expect_frozen_rank_blamed(int stopped, const std::vector<std::string>& expected) {
  PidDir pids;
  auto r = launch_training_then_stop(pids, stopped, /*timeout_s=*/4);
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_LT(r.seconds, 1.5 + 4 + 2 + 10.0) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const auto& line : expected) EXPECT_TRUE(contains(r.output, line)) << line << "\n" << r.output;
  EXPECT_TRUE(contains(r.output, "root cause: rank " + std::to_string(stopped))) << r.output;
  EXPECT_TRUE(contains(r.output, "stopped answering: rank " + std::to_string(1 - stopped) + " timed out")) << r.output;
  EXPECT_FALSE(contains(r.output, "terminate called")) << r.output;
  EXPECT_FALSE(contains(r.output, "frame #")) << r.output;
  pids.expect_all_gone();
}

// Issue 10, case 1: the rank that hosts the rendezvous store freezes; the other's hang report cannot read the
// store, and must not wait on it.
TEST(LaunchFailure, FrozenStoreHostEndsEveryRankAndIsBlamed) {
  expect_frozen_rank_blamed(0, {"failed on rank 1 of 2", "rank 0: UNREACHABLE: it hosts the rendezvous store",
                                "Ranks that cannot be reached: 0."});
}

// Issue 10, case 2: a frozen rank that does not host the store; the rank that times out does so in the Reducer's
// all-reduce, inside backward, and must raise our TimeoutError.
TEST(LaunchFailure, FrozenRankIsBlamedNotTheRankThatTimedOut) {
  // Rank 1 shows as "has NOT arrived" or "NOT RESPONDING", depending on where SIGSTOP caught it.
  expect_frozen_rank_blamed(1, {"failure_worker: backward (gradient all-reduce) failed on rank 0 of 2"});
}

// When a rank dies mid-training, the others end with our one-paragraph error, not c10's stack trace, and the
// dead rank is the root cause.
TEST(LaunchFailure, DeadRankGivesOthersAShortErrorAndIsBlamed) {
  PidDir pids;
  auto r = launch({"--num_processes", "2", "--timeout", "20", kWorker, "train_die"}, {{"PID_DIR", pids.str()}});
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  EXPECT_TRUE(contains(r.output, "root cause: rank 1")) << r.output;
  EXPECT_FALSE(contains(r.output, "frame #")) << r.output;
  EXPECT_FALSE(contains(r.output, "terminate called")) << r.output;
  pids.expect_all_gone();
}

TEST(LaunchFailure, HangReportNamesTheMissingRankAndItsLastOperation) {
  // Rank 1 skips the reduce (it sleeps): the stall warning comes first (0.5 s), then the timeout's report; both
  // name rank 1 and the last collective it finished.
  auto r =
      launch({"--num_processes", "2", "--timeout", "3", kWorker, "hang"}, {{"ACCELERATE_CPP_STALL_WARNING", "0.5"}});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  expect_output_has(r.output, {"accelerate: warning: rank 0 has waited", "in collective #2 (reduce)",
                               "rank 1: has NOT arrived; last finished #1 wait_for_everyone",
                               "Ranks that have not reached #2: 1.", "Hang report: rank 0 has waited"});
  EXPECT_LT(r.seconds, 3 + 10.0);
}

TEST(LaunchFailure, ACollectiveCalledOutOfOrderFailsWithinSecondsNamingBothCalls) {
  // Rank 1 skips the reduce: the ranks are in different collectives at #2, which can never complete. With the
  // default timeout (600 s), every rank must still end within seconds.
  auto r = launch({"--num_processes", "2", kWorker, "skip"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 15.0) << r.output;
  expect_output_has(r.output,
                    {"deadlock: the processes called different collectives as their collective #2",
                     "rank 0 is in reduce (failure_worker.cpp:", "rank 1 is in wait_for_everyone (failure_worker.cpp:",
                     "Every process must call the same collectives in the same order"});
}

TEST(LaunchFailure, SaveStateOnTheMainProcessOnlyFailsWithinSecondsNamingEveryCall) {
  // The common mistake: save_state inside `if (is_main_process())`, then wait_for_everyone; default timeout.
  const auto dir = fs::temp_directory_path() / ("accelerate_deadlock_" + std::to_string(::getpid()));
  PidDir pids;
  auto r =
      launch({"--num_processes", "2", kWorker, "save_main_only", (dir / "ckpt").string()}, {{"PID_DIR", pids.str()}});
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 15.0) << r.output;
  expect_output_has(
      r.output, {"rank 0 is in save_state (failure_worker.cpp:", "rank 1 is in wait_for_everyone (failure_worker.cpp:",
                 "save_state must be called on every process: it writes from the main process"});
  EXPECT_FALSE(contains(r.output, "finished (unexpected)")) << r.output;
  pids.expect_all_gone();
}

TEST(LaunchFailure, AMismatchWithDdpsBucketRebuildFailsWithinSeconds) {
  // The bucket rebuild after the first synchronised backward is DDP's own broadcast, here in a backward without
  // an all-reduce: it must be named in the hang report like every other collective, or rank 0 waits for the
  // whole timeout.
  auto r = launch({"--num_processes", "2", kWorker, "check_one_rank"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 15.0) << r.output;
  expect_output_has(r.output,
                    {"rank 0 is in check_preemption (failure_worker.cpp:", "rank 1 is in backward (failure_worker.cpp:",
                     "in its backward (gradient bucket rebuild)"});
  EXPECT_FALSE(contains(r.output, "finished (unexpected)")) << r.output;
}

TEST(LaunchFailure, ARankThatReturnsEarlyIsNamedAsSuch) {
  auto r = launch({"--num_processes", "2", kWorker, "return_early"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 15.0) << r.output;
  expect_output_has(r.output, {"root cause: rank 1 (local rank 1, pid",
                               "exited with code 0 while the others still called collectives"});
}

TEST(LaunchFailure, ASlowRankIsNotADeadlock) {
  // Rank 1 reaches the same wait_for_everyone 5 s after rank 0: the check must not fire.
  auto r = launch({"--num_processes", "2", kWorker, "slow"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_output_has(r.output,
                    {"[rank0]: slow: wait_for_everyone finished", "[rank1]: slow: wait_for_everyone finished"});
  EXPECT_FALSE(contains(r.output, "deadlock")) << r.output;
}

TEST(LaunchPreemption, APreemptedGroupIsRestartedWithoutUsingARestart) {
  // Rank 1 gets SIGTERM in the first two attempts; every rank sees it at the same check and exits 75. With
  // --max_restarts 1, both preemptions must restart the group without counting, and the third attempt succeeds.
  auto r = launch({"--num_processes", "2", "--max_restarts", "1", kWorker, "preempt_self"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Both ranks stop at the same step (at or after 5: flags are exchanged about every 0.25 s).
  EXPECT_EQ(preempted_step(r.output, 0), preempted_step(r.output, 1)) << r.output;
  EXPECT_GE(preempted_step(r.output, 0), 5) << r.output;
  expect_output_has(r.output, {"restarting all 2 worker(s) after a preemption (not counted)", "finished 50 steps"});
  EXPECT_FALSE(contains(r.output, "(restart 1 of 1)")) << r.output;
}

TEST(LaunchPreemption, WithoutRestartsThePreemptedCodeIsTheLaunchersCode) {
  auto r = launch({"--num_processes", "2", kWorker, "preempt_self"});
  EXPECT_EQ(r.exit_code, 75) << r.output;
  EXPECT_TRUE(contains(r.output, "2 worker(s) saved and exited with code 75 (preempted, resumable")) << r.output;
}

TEST(LaunchPreemption, TheSameNoticeToTheLauncherAndItsWorkersIsOneNotice) {
  // SLURM signals every process of a step: each worker gets SIGTERM directly and again from the launcher. The
  // second copy must not kill a worker before it has saved.
  PidDir pids;
  auto r = run({kLauncher, "launch", "--num_processes", "2", kWorker, "preempt_wait"}, {{"PID_DIR", pids.str()}},
               std::chrono::seconds(30), [&](int pid) {
                 for (int i = 0; i < 300 && pids.pids().size() < 2; ++i) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 }
                 std::this_thread::sleep_for(std::chrono::milliseconds(500));  // past the first check
                 for (int worker : pids.pids()) ::kill(worker, SIGTERM);
                 ::kill(pid, SIGTERM);
               });
  EXPECT_EQ(r.exit_code, 75) << r.output;
  EXPECT_EQ(preempted_step(r.output, 0), preempted_step(r.output, 1)) << r.output;
  expect_output_has(r.output,
                    {"[rank0]: preempted at step", "received SIGTERM; 2 worker(s) saved and exited with code 75"});
}

TEST(LaunchPreemption, ANoticeAfterTheWorkersFinishedIsNotAFailure) {
  // The workers do not stop for the notice (it came after their last check) and finish: exit 0, not 143.
  auto r = run({kLauncher, "launch", "--num_processes", "2", "sh", "-c", "trap '' TERM; sleep 1"}, {},
               std::chrono::seconds(30), [&](int pid) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(300));
                 ::kill(pid, SIGTERM);
               });
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_output_has(r.output, {"received SIGTERM; all 2 worker(s) had finished (exit 0)"});
}

TEST(LaunchPreemption, WorkersEndedByTheNoticeItselfAreSaidToHaveSavedNothing) {
  // A wrapper script without `exec` (here a shell waiting on sleep) dies of the forwarded SIGUSR1: the summary
  // must say that nothing was saved and why, not only "stopped".
  auto r = run({kLauncher, "launch", "--num_processes", "2", "sh", "-c", "sleep 30; true"}, {},
               std::chrono::seconds(30), [&](int pid) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(500));
                 ::kill(pid, SIGUSR1);
               });
  EXPECT_EQ(r.exit_code, 128 + SIGUSR1) << r.output;
  expect_output_has(r.output, {"received SIGUSR1; stopped all 2 worker(s). 2 ended by the SIGUSR1 itself, without "
                               "saving",
                               "a wrapper script must `exec` the program"});
}

TEST(LaunchPreemption, APeerThatDoesNotFollowAPreemptedWorkerIsStoppedAndTheCodeStays75) {
  auto r = launch({"--num_processes", "2", "--grace_period", "1", "sh", "-c",
                   "if [ \"$RANK\" = 1 ]; then sleep 0.3; exit 75; fi; sleep 30"});
  EXPECT_EQ(r.exit_code, 75) << r.output;
  EXPECT_LT(r.seconds, 10.0) << r.output;
  expect_output_has(r.output, {"1 worker(s) saved and exited with code 75 (preempted, resumable); 1 did not follow"});
}

TEST(LaunchPreemption, AProgramThatStopsCheckingIsKilledAfterTheGracePeriod) {
  // The handlers are installed (one check), but the program never checks again: SIGTERM is absorbed, and the
  // launcher must SIGKILL the workers once --grace_period (2 s) is over.
  PidDir pids;
  auto r = run({kLauncher, "launch", "--num_processes", "2", "--grace_period", "2", kWorker, "preempt_ignore"},
               {{"PID_DIR", pids.str()}}, std::chrono::seconds(30), [&](int pid) {
                 for (int i = 0; i < 300 && pids.pids().size() < 2; ++i) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                 }
                 std::this_thread::sleep_for(std::chrono::milliseconds(500));  // past the one check
                 ::kill(pid, SIGTERM);
               });
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_GT(r.seconds, 2.0) << r.output;
  EXPECT_LT(r.seconds, 10.0) << r.output;
  pids.expect_all_gone();
}

TEST(LaunchFailure, DebugModeTurnsAShapeMismatchIntoAnErrorOnEveryRank) {
  PidDir pids;
  auto r = launch({"--num_processes", "2", "--debug", "--timeout", "30", kWorker, "shapes"}, {{"PID_DIR", pids.str()}});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 10.0) << "a mismatch must not wait for the timeout";
  for (const char* rank : {"[rank0]: ", "[rank1]: "}) {
    EXPECT_TRUE(contains(r.output, std::string(rank) +
                                       "failure_worker: Cannot apply desired operation due to different "
                                       "numbers of dimensions (debug mode)"))
        << rank << "\n"
        << r.output;
    EXPECT_TRUE(contains(r.output, std::string(rank) + "  - Process 0: gather of [1, 5] Float on cpu")) << r.output;
    EXPECT_TRUE(contains(r.output, std::string(rank) + "  - Process 1: gather of [1, 2, 5] Float on cpu")) << r.output;
  }
  EXPECT_FALSE(contains(r.output, "gather finished")) << r.output;
  pids.expect_all_gone();
}

struct BadInput {
  const char* name;
  std::vector<std::string> args;
  int exit_code;  // -1: any non-zero
  std::string message;
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class LaunchBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(LaunchBadInput, FailsWithAClearMessage) {
  const auto& c = GetParam();
  auto r = launch(c.args);
  EXPECT_FALSE(r.timed_out);
  if (c.exit_code < 0) {
    EXPECT_NE(r.exit_code, 0) << r.output;
  } else {
    EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
  }
  EXPECT_TRUE(contains(r.output, c.message)) << "expected: " << c.message << "\n" << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Flags, LaunchBadInput,
    ::testing::Values(
        BadInput{"UnknownFlag", {"--num_procs", "2", "env"}, -1, "unknown flag '--num_procs'"},
        BadInput{"ZeroProcesses", {"--num_processes", "0", "env"}, 2, "--num_processes must be >= 1"},
        BadInput{"NonNumericFlag", {"--num_processes", "two", "env"}, -1, "--num_processes"},
        BadInput{"NoProgram", {"--num_processes", "2"}, -1, "no PROGRAM given"},
        BadInput{
            "MissingProgram", {"--num_processes", "2", "./no/such/trainer"}, 1, "'./no/such/trainer' does not exist"},
        BadInput{"MissingConfigFile",
                 {"--config_file", "/nonexistent/accelerate.yaml", "env"},
                 2,
                 "/nonexistent/accelerate.yaml does not exist"},
        BadInput{"MultiNodeWithoutIp",
                 {"--num_processes", "2", "--num_machines", "2", "env"},
                 2,
                 "--main_process_ip is required"},
        // Issue 10, case 3: usage errors exit 2 (CLI11's own code for a bad number was 104).
        BadInput{"NonNumericTimeout", {"--timeout", "abc", "env"}, 2, "--timeout"},
        BadInput{"InfiniteGracePeriod",
                 {"--grace_period", "inf", "env"},
                 2,
                 "--grace_period must be a number of seconds between 0 and 31536000"},
        BadInput{
            "ConfigFileIsAFolder", {"--config_file", "/tmp", "env"}, 2, "/tmp is not a regular file but a folder"}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

TEST(LaunchBadInputFiles, ProgramNotExecutable) {
  const auto path = fs::temp_directory_path() / ("accelerate_noexec_" + std::to_string(::getpid()));
  std::ofstream(path) << "#!/bin/sh\n";
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  auto r = launch({"--num_processes", "2", path.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "is not executable")) << r.output;
  fs::remove(path);
}

TEST(LaunchBadInputFiles, PortInUse) {
  const auto [fd, port] = reserve_port();
  ASSERT_EQ(::listen(fd, 1), 0);
  auto r = launch({"--num_processes", "2", "--main_process_port", port, kWorker, "rendezvous"});
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "--main_process_port " + port + " is already in use")) << r.output;
}

TEST(LaunchBadInputFiles, UnreachableMasterTimesOut) {
  // Machine 1 of 2 points at a rendezvous nobody hosts: a clear timeout, not a hang.
  const auto [fd, port] = reserve_port();  // bound but not listening: nobody answers there
  auto r = launch({"--num_processes", "2", "--num_machines", "2", "--machine_rank", "1", "--main_process_ip",
                   "127.0.0.1", "--main_process_port", port, "--timeout", "2", kWorker, "rendezvous"},
                  {}, std::chrono::seconds(30));
  ::close(fd);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 15.0);
  EXPECT_TRUE(contains(r.output, "could not complete the rendezvous at 127.0.0.1:" + port)) << r.output;
  EXPECT_TRUE(contains(r.output, "root cause: rank 1")) << r.output;
}

TEST(LaunchBadInputFiles, AMasterPortThatNeverAnswersTimesOut) {
  // A stale or foreign service on the master port: the kernel completes the connection (listen, never accept),
  // then nothing is ever said. Machine 1 must give up within about --timeout, naming the address and port.
  const auto [fd, port] = reserve_port();
  ASSERT_EQ(::listen(fd, 16), 0);
  auto r = launch({"--num_processes", "2", "--num_machines", "2", "--machine_rank", "1", "--main_process_ip",
                   "127.0.0.1", "--main_process_port", port, "--timeout", "3", kWorker, "rendezvous"},
                  {}, std::chrono::seconds(40));
  ::close(fd);
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(r.seconds, 20.0) << r.output;
  EXPECT_TRUE(contains(r.output, "127.0.0.1:" + port)) << r.output;
}

TEST(Launch, SaveModelAfterEndTrainingWorks) {
  // HF's order: end_training, then save_model. The main process writes; nobody waits on a destroyed group.
  const auto dir = fs::temp_directory_path() / ("accelerate_save_after_end_" + std::to_string(::getpid()));
  auto r = launch({"--num_processes", "2", kWorker, "save_after_end", dir.string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_output_has(r.output, {"[rank0]: saved after end_training", "[rank1]: saved after end_training"});
  EXPECT_TRUE(fs::exists(dir / "model.safetensors")) << r.output;
  fs::remove_all(dir);
}

TEST(LaunchFailure, AMismatchThatGlooSeesFirstIsTheSameErrorNotAnAbort) {
  // Should Gloo receive data of another size than it posted for, it raises in its own thread, which must not abort
  // the rank (SIGABRT, uncatchable): every rank gets the deadlock error naming both calls, within seconds. (The
  // abort of the report did not reproduce on this machine with any size tried: this guards the outcome.)
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = launch({"--num_processes", "2", kWorker, "gather_vs_reduce"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_LT(r.seconds, 20.0) << r.output;
    expect_output_has(r.output, {"rank 0 is in gather (failure_worker.cpp:", "rank 1 is in reduce (failure_worker.cpp:",
                                 "[rank0]: failure_worker: ", "[rank1]: failure_worker: "});
    EXPECT_FALSE(contains(r.output, "EnforceNotMet")) << r.output;
    EXPECT_FALSE(contains(r.output, "SIGABRT")) << r.output;
    EXPECT_FALSE(contains(r.output, "unexpected")) << r.output;
  }
}
