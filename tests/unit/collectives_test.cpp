// The collectives in a world of one (their local paths) and split_between_processes' ranges (HF's).
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace accelerate;

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
