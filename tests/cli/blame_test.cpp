// The launcher's verdict on which rank caused a failed run (cli/launcher/blame.hpp): pure, no processes.
#include <gtest/gtest.h>

#include "launcher/blame.hpp"

using namespace accelerate::launcher;

namespace {
CollectiveFailure timed_out_waiting_for(std::vector<int> ranks) {
  return {"TimeoutError", "backward (gradient all-reduce)", 57, std::move(ranks)};
}
}  // namespace

TEST(Blame, ARankThatFailedOnItsOwnIsTheCause) {
  // Rank 0's collective failed because rank 1 exited 3; rank 0 was reaped first.
  const auto b = blame({{0, true, 0, false, CollectiveFailure{"DistributedOperationError", "reduce", 2, {1}}},
                        {1, true, 1, false, std::nullopt}});
  EXPECT_EQ(b.rank, 1);
  EXPECT_FALSE(b.unresponsive);
  EXPECT_EQ(b.first_failure, 0);
}

TEST(Blame, TheRankOthersWaitedForIsTheCause) {
  const auto b = blame({{0, true, 0, false, timed_out_waiting_for({1})}, {1, false, -1, false, std::nullopt}});
  EXPECT_EQ(b.rank, 1);
  EXPECT_TRUE(b.unresponsive);
  EXPECT_EQ(b.reason, "rank 0 timed out in collective #57 (backward (gradient all-reduce)) waiting for it");
}

TEST(Blame, AStoppedRankIsTheCauseEvenBeforeAnyCollective) {
  // Rank 1 was SIGSTOPped before the rendezvous: rank 0 fails on its own (no collective), yet rank 1 is the cause.
  const auto b = blame({{0, true, 0, false, std::nullopt}, {1, false, -1, true, std::nullopt}});
  EXPECT_EQ(b.rank, 1);
  EXPECT_TRUE(b.unresponsive);
  EXPECT_EQ(b.reason, "it was stopped (SIGSTOP, or held by a debugger) when rank 0 failed");
}

TEST(Blame, ARankOnAnotherMachineCanBeTheCause) {
  const auto b =
      blame({{2, true, 0, false, timed_out_waiting_for({0})}, {3, true, 1, false, timed_out_waiting_for({0})}});
  EXPECT_EQ(b.rank, 0);
  EXPECT_TRUE(b.unresponsive);
}

TEST(Blame, WithoutEvidenceTheFirstFailureIsTheCause) {
  const auto b =
      blame({{0, true, 1, false, timed_out_waiting_for({})}, {1, true, 0, false, timed_out_waiting_for({})}});
  EXPECT_EQ(b.rank, 1);
  EXPECT_FALSE(b.unresponsive);
}
