// Launch-environment detection for every flavour: ours, torchrun, Open MPI, SLURM, none; and the errors.
#include <accelerate/environment.hpp>
#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>

#include "detail/launch_threads.hpp"

#include <gtest/gtest.h>

using namespace accelerate;

namespace {
EnvironmentVariables torchrun_env(int rank, int world, int local, int local_world) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world)},
          {"LOCAL_RANK", std::to_string(local)},
          {"LOCAL_WORLD_SIZE", std::to_string(local_world)},
          {"GROUP_RANK", std::to_string(rank / local_world)},
          {"MASTER_ADDR", "10.1.2.3"},
          {"MASTER_PORT", "29555"}};
}

struct Ranks {
  int rank, world_size, local_rank, local_world_size, node_rank, num_nodes;
};

void expect_ranks(const LaunchEnvironment& e, Ranks want) {
  EXPECT_EQ(e.rank, want.rank);
  EXPECT_EQ(e.world_size, want.world_size);
  EXPECT_EQ(e.local_rank, want.local_rank);
  EXPECT_EQ(e.local_world_size, want.local_world_size);
  EXPECT_EQ(e.node_rank, want.node_rank);
  EXPECT_EQ(e.num_nodes, want.num_nodes);
}

void expect_config_error(const EnvironmentVariables& env, const std::string& needle) {
  try {
    detect_launch_environment(env);
    FAIL() << "expected a ConfigError mentioning " << needle;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Environment, NothingSetIsASingleProcess) {
  auto e = detect_launch_environment({{"HOME", "/home/someone"}});
  EXPECT_EQ(e.launcher, Launcher::None);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.local_world_size, 1);
  EXPECT_EQ(e.num_nodes, 1);
}

TEST(Environment, Torchrun) {
  auto env = torchrun_env(5, 8, 1, 4);
  env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  auto e = detect_launch_environment(env);
  EXPECT_EQ(e.launcher, Launcher::Torchrun);
  expect_ranks(e, {.rank = 5, .world_size = 8, .local_rank = 1, .local_world_size = 4, .node_rank = 1, .num_nodes = 2});
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 29555);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 0);
  env["TORCHELASTIC_RESTART_COUNT"] = "3";  // the agent's store outlives restarts: our keys go under attempt 3
  EXPECT_EQ(detect_launch_environment(env).restart_count, 3);
}

TEST(Environment, OurLauncherIsTorchrunPlusMarker) {
  auto env = torchrun_env(1, 2, 1, 2);
  env["ACCELERATE_CPP_LAUNCHED"] = "1";
  env["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  auto e = detect_launch_environment(env);
  EXPECT_EQ(e.launcher, Launcher::Accelerate);
  EXPECT_FALSE(e.agent_store);
  EXPECT_EQ(e.num_nodes, 1);
}

TEST(Environment, TorchrunTakesPrecedenceOverMpiAndSlurm) {
  auto env = torchrun_env(0, 2, 0, 2);
  env["OMPI_COMM_WORLD_SIZE"] = "4";
  env["SLURM_PROCID"] = "3";
  env["SLURM_NTASKS"] = "4";
  EXPECT_EQ(detect_launch_environment(env).launcher, Launcher::Torchrun);
}

TEST(Environment, OpenMpi) {
  EnvironmentVariables env{{"OMPI_COMM_WORLD_RANK", "3"},
                           {"OMPI_COMM_WORLD_SIZE", "4"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                           {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                           {"MASTER_ADDR", "host0"}};
  auto e = detect_launch_environment(env);
  EXPECT_EQ(e.launcher, Launcher::OpenMPI);
  expect_ranks(e, {.rank = 3, .world_size = 4, .local_rank = 1, .local_world_size = 2, .node_rank = 1, .num_nodes = 2});
  EXPECT_EQ(e.master_addr, "host0");
  EXPECT_EQ(e.master_port, 29500);  // HF's default when MPI sets none
}

TEST(Environment, OpenMpiSingleNodeDefaultsToLoopback) {
  EnvironmentVariables env{{"OMPI_COMM_WORLD_RANK", "0"},
                           {"OMPI_COMM_WORLD_SIZE", "2"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                           {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}};
  auto e = detect_launch_environment(env);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
}

TEST(Environment, OpenMpiMultiNodeNeedsMasterAddr) {
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "0"},
                       {"OMPI_COMM_WORLD_SIZE", "4"},
                       {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                       {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
                      "MASTER_ADDR");
}

TEST(Environment, Slurm) {
  EnvironmentVariables env{{"SLURM_PROCID", "5"},    {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                           {"SLURM_NNODES", "2"},    {"SLURM_NODEID", "1"}, {"SLURM_JOB_NODELIST", "gpu[07-08]"},
                           {"MASTER_PORT", "31000"}, {"SLURM_STEP_ID", "0"}};
  auto e = detect_launch_environment(env);
  EXPECT_EQ(e.launcher, Launcher::Slurm);
  expect_ranks(e, {.rank = 5, .world_size = 8, .local_rank = 1, .local_world_size = 4, .node_rank = 1, .num_nodes = 2});
  EXPECT_EQ(e.master_addr, "gpu07");
  EXPECT_EQ(e.master_port, 31000);
}

TEST(Environment, SlurmMasterAddrWins) {
  EnvironmentVariables env{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"},     {"SLURM_STEP_ID", "0"},
                           {"SLURM_NNODES", "2"}, {"SLURM_NODELIST", "a,b"}, {"MASTER_ADDR", "10.0.0.9"}};
  EXPECT_EQ(detect_launch_environment(env).master_addr, "10.0.0.9");
}

// Under srun, the step's variables win over the job's: `#SBATCH --ntasks-per-node=1` (a launcher per node) and
// then `srun -n 4` on 2 nodes leaves SLURM_NTASKS_PER_NODE=1 but puts 2 tasks on each node.
TEST(Environment, SlurmStepLayoutWinsOverTheJobs) {
  EnvironmentVariables env{{"SLURM_PROCID", "3"},
                           {"SLURM_NTASKS", "4"},
                           {"SLURM_STEP_ID", "1"},
                           {"SLURM_STEP_NUM_TASKS", "4"},
                           {"SLURM_LOCALID", "1"},
                           {"SLURM_NODEID", "1"},
                           {"SLURM_NNODES", "3"},
                           {"SLURM_STEP_NUM_NODES", "2"},
                           {"SLURM_NTASKS_PER_NODE", "1"},
                           {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                           {"SLURM_JOB_NODELIST", "n[1-3]"},
                           {"SLURM_STEP_NODELIST", "n[2-3]"}};
  auto e = detect_launch_environment(env);
  expect_ranks(e, {.rank = 3, .world_size = 4, .local_rank = 1, .local_world_size = 2, .node_rank = 1, .num_nodes = 2});
  EXPECT_EQ(e.master_addr, "n2");  // the step's first node, not the job's
}

TEST(Environment, SlurmBatchScriptIsNotARank) {
  // What the batch script sees of `#SBATCH --ntasks=2`: no step. A program started there without srun would wait
  // for a rank 1 that never comes.
  EnvironmentVariables batch{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "vm"}};
  expect_config_error(batch, "srun <program>");
  batch["SLURM_NTASKS"] = "1";  // a job of one task: the batch script is the whole run
  EXPECT_EQ(detect_launch_environment(batch).world_size, 1);
}

TEST(SlurmTasksPerNode, CompressedCounts) {
  EnvironmentVariables env{{"SLURM_PROCID", "4"},  {"SLURM_NTASKS", "7"},      {"SLURM_STEP_ID", "0"},
                           {"SLURM_NODEID", "2"},  {"SLURM_NNODES", "3"},      {"SLURM_STEP_TASKS_PER_NODE", "2(x2),3"},
                           {"SLURM_LOCALID", "0"}, {"SLURM_NODELIST", "a,b,c"}};
  EXPECT_EQ(detect_launch_environment(env).local_world_size, 3);
  env["SLURM_NODEID"] = "1";
  env["SLURM_PROCID"] = "2";
  EXPECT_EQ(detect_launch_environment(env).local_world_size, 2);
  env["SLURM_STEP_TASKS_PER_NODE"] = "garbage";  // not SLURM's form: the even share
  EXPECT_EQ(detect_launch_environment(env).local_world_size, 3);
}

TEST(SlurmNodelist, FirstHost) {
  EXPECT_EQ(first_host_in_slurm_nodelist("node01"), "node01");
  EXPECT_EQ(first_host_in_slurm_nodelist("node[03-05,9],gpu1"), "node03");
  EXPECT_EQ(first_host_in_slurm_nodelist("a1,b[1-2]"), "a1");
  EXPECT_EQ(first_host_in_slurm_nodelist("rack[2-3]-node[10-11]"), "rack2-node10");
  EXPECT_EQ(first_host_in_slurm_nodelist("n[7]"), "n7");
  EXPECT_THROW(first_host_in_slurm_nodelist("n[1-2"), ConfigError);
}

TEST(Environment, RankOutOfRange) { expect_config_error(torchrun_env(2, 2, 0, 2), "RANK=2 is out of range"); }

TEST(Environment, LocalRankOutOfRange) {
  expect_config_error(torchrun_env(1, 2, 3, 2), "LOCAL_RANK=3 is out of range");
}

TEST(Environment, NonNumeric) {
  auto env = torchrun_env(0, 2, 0, 2);
  env["WORLD_SIZE"] = "two";
  expect_config_error(env, "WORLD_SIZE='two' is not an integer");
  env = torchrun_env(0, 2, 0, 2);
  env["RANK"] = "1x";
  expect_config_error(env, "RANK='1x'");
}

TEST(Environment, MissingMasterPort) {
  auto env = torchrun_env(0, 2, 0, 2);
  env.erase("MASTER_PORT");
  expect_config_error(env, "MASTER_PORT is not set");
}

TEST(Environment, MissingWorldSize) { expect_config_error({{"RANK", "0"}}, "WORLD_SIZE is not set"); }

TEST(Environment, BadPort) {
  auto env = torchrun_env(0, 2, 0, 2);
  env["MASTER_PORT"] = "70000";
  expect_config_error(env, "not a TCP port");
}

TEST(Environment, SingleProcessNeedsNoMaster) {
  auto e = detect_launch_environment({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.master_port, 0);
}

TEST(ParseBool, HfSpellings) {
  for (auto t : {"y", "YES", "t", "True", "on", "1"}) EXPECT_TRUE(parse_bool(t, "X"));
  for (auto f : {"n", "no", "F", "false", "OFF", "0"}) EXPECT_FALSE(parse_bool(f, "X"));
  EXPECT_THROW(parse_bool("maybe", "X"), ConfigError);
}

// srun and mpirun set no OMP_NUM_THREADS: the processes of a machine share its cores, as under torchrun.
TEST(IntraOpThreads, SrunSharesTheMachinesCoresBetweenItsTasks) {
  EnvironmentVariables env{{"SLURM_PROCID", "1"},
                           {"SLURM_NTASKS", "2"},
                           {"SLURM_LOCALID", "1"},
                           {"SLURM_JOB_NODELIST", "vm"},
                           {"SLURM_STEP_ID", "0"}};
  const auto e = detect_launch_environment(env);
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 8, 8), 4);
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 3, 8), 3);  // srun bound the task to 3 CPUs
  env["SLURM_CPUS_PER_TASK"] = "5";
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 16, 16), 5);
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 1, 8), 1);  // the job's -c 5, but this step bound it to 1
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 6, 6), 3);  // unbound: at most its share (2 tasks, 6 cores)
  env["OMP_NUM_THREADS"] = "7";                                  // the user's choice stays
  EXPECT_EQ(detail::default_intra_op_threads(e, env, 8, 8), std::nullopt);
  env.erase("OMP_NUM_THREADS");
  env["SLURM_CPUS_PER_TASK"] = "0";
  EXPECT_THROW(detail::default_intra_op_threads(e, env, 8, 8), ConfigError);
}

TEST(IntraOpThreads, MpirunSharesAndOtherLaunchersAreLeftAlone) {
  EnvironmentVariables mpi{{"OMPI_COMM_WORLD_RANK", "0"},       {"OMPI_COMM_WORLD_SIZE", "3"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"},
                           {"MASTER_ADDR", "127.0.0.1"},        {"MASTER_PORT", "29555"}};
  EXPECT_EQ(detail::default_intra_op_threads(detect_launch_environment(mpi), mpi, 2, 2), 1);  // at least one
  const auto torchrun = torchrun_env(0, 2, 0, 2);  // torchrun and our launcher export OMP_NUM_THREADS themselves
  EXPECT_EQ(detail::default_intra_op_threads(detect_launch_environment(torchrun), torchrun, 8, 8), std::nullopt);
  EXPECT_EQ(detail::default_intra_op_threads(detect_launch_environment({}), {}, 8, 8), std::nullopt);
}
