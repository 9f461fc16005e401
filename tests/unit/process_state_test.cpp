// ProcessState outside any launcher (a valid world of one), its option errors, and the collectives' local paths.
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

TEST(CollectivesAlone, WorkLocally) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  auto t = at::arange(6, at::kFloat).reshape({3, 2});
  EXPECT_TRUE(at::equal(gather(state, t), t));
  EXPECT_FALSE(gather(state, t).is_same(t));
  EXPECT_EQ(gather(state, at::scalar_tensor(1.0)).sizes(), at::IntArrayRef({1}));
  EXPECT_TRUE(at::equal(reduce(state, t, Reduction::Mean), t));
  EXPECT_TRUE(at::equal(reduce(state, t, Reduction::Sum), t));
  EXPECT_TRUE(broadcast(state, t, 0).is_same(t));
  EXPECT_THROW(broadcast(state, t, 1), ConfigError);
  EXPECT_TRUE(pad_across_processes(state, t).is_same(t));
  auto objects = gather_object(state, c10::IValue("x"));
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0].toStringRef(), "x");
  EXPECT_EQ(gather_object(state, std::vector<int64_t>{1, 2}), (std::vector<int64_t>{1, 2}));
  std::vector<c10::IValue> list{c10::IValue(int64_t{1})};
  broadcast_object_list(state, list);
  EXPECT_EQ(list.size(), 1u);
  wait_for_everyone(state);
  { auto guard = main_process_first(state); }
  EXPECT_EQ(split_between_processes(state, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 2, 3}));
}

TEST(SplitRange, MatchesHf) {
  // 7 items over 3 ranks: 3, 2, 2 (the first length % world ranks get one more).
  auto r0 = accelerate::detail::split_range(7, 0, 3), r1 = accelerate::detail::split_range(7, 1, 3),
       r2 = accelerate::detail::split_range(7, 2, 3);
  EXPECT_EQ(r0.start, 0);
  EXPECT_EQ(r0.end, 3);
  EXPECT_EQ(r1.start, 3);
  EXPECT_EQ(r1.end, 5);
  EXPECT_EQ(r2.start, 5);
  EXPECT_EQ(r2.end, 7);
  EXPECT_EQ(r2.padded_length, 3);
  // 2 items over 4 ranks: ranks past the end get an empty share (HF since its PR #4052).
  auto r3 = accelerate::detail::split_range(2, 3, 4);
  EXPECT_EQ(r3.end - r3.start, 0);
  EXPECT_EQ(r3.padded_length, 1);
  EXPECT_EQ(accelerate::detail::split_range(8, 1, 4).padded_length, 2);
}
