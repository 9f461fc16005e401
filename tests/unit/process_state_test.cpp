// ProcessState outside any launcher (a valid world of one) and its option errors.
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(ProcessState, AloneIsAWorldOfOne) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  EXPECT_EQ(state.num_processes(), 1);
  EXPECT_EQ(state.process_index(), 0);
  EXPECT_TRUE(state.is_main_process());
  EXPECT_TRUE(state.is_local_main_process());
  EXPECT_TRUE(state.is_last_process());
  EXPECT_EQ(state.distributed_type(), DistributedType::No);
  EXPECT_EQ(state.backend(), "");
  EXPECT_EQ(state.device(), c10::Device(c10::kCPU));
  EXPECT_EQ(state.launcher(), Launcher::None);
  EXPECT_EQ(state.timeout(), std::chrono::milliseconds(kDefaultTimeout));
}

TEST(ProcessState, TimeoutFromEnvironmentAndOptions) {
  ProcessState from_env(EnvironmentVariables{{"ACCELERATE_CPP_TIMEOUT", "2.5"}}, ProcessStateOptions{.cpu = true});
  EXPECT_EQ(from_env.timeout(), std::chrono::milliseconds(2500));
  ProcessState from_options(EnvironmentVariables{{"ACCELERATE_CPP_TIMEOUT", "9"}},
                            ProcessStateOptions{.cpu = true, .timeout = std::chrono::seconds(3)});
  EXPECT_EQ(from_options.timeout(), std::chrono::seconds(3));
  EXPECT_THROW(ProcessState(EnvironmentVariables{{"ACCELERATE_CPP_TIMEOUT", "soon"}}, ProcessStateOptions{}),
               ConfigError);
  EXPECT_THROW(ProcessState(EnvironmentVariables{{"ACCELERATE_CPP_TIMEOUT", "-1"}}, ProcessStateOptions{}),
               ConfigError);
}

TEST(ProcessState, InconsistentEnvironmentIsAConfigError) {
  EXPECT_THROW(ProcessState(EnvironmentVariables{{"RANK", "3"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1234"}},
                            ProcessStateOptions{}),
               ConfigError);
  EXPECT_THROW(ProcessState(EnvironmentVariables{{"ACCELERATE_USE_CPU", "perhaps"}}, ProcessStateOptions{}),
               ConfigError);
}

TEST(ProcessState, NcclOnCpuIsAConfigError) {
  // A two-process world so that the backend is chosen; the check fires before any rendezvous.
  EnvironmentVariables env{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}, {"MASTER_ADDR", "127.0.0.1"}};
  try {
    ProcessState state(env, ProcessStateOptions{.cpu = true, .backend = "nccl"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("backend 'nccl' needs CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ProcessState(env, ProcessStateOptions{.cpu = true, .backend = "mpi"}), ConfigError);
}
