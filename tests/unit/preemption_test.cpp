// check_preemption and HF's set_trigger/check_trigger in a world of one (the agreement across processes is
// tested with the launcher: tests/distributed/launcher_test.cpp, LaunchPreemption).
#include <accelerate/accelerate.hpp>

#include <csignal>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(Preemption, ASigtermAfterTheFirstCheckIsSeenByTheNextAndItsDuplicateIsIgnored) {
  Accelerator acc(AcceleratorOptions{.cpu = true});
  EXPECT_FALSE(acc.check_preemption());  // installs the handlers
  ASSERT_EQ(::raise(SIGTERM), 0);        // without the handler this process would end here
  EXPECT_TRUE(acc.check_preemption());
  EXPECT_TRUE(acc.check_preemption());  // the request stays: the process is being stopped
  // The same notice delivered again (SLURM signals every process; the launcher forwards its own) must not end the
  // process before it has saved.
  ASSERT_EQ(::raise(SIGTERM), 0);
  ASSERT_EQ(::raise(SIGUSR1), 0);
  EXPECT_TRUE(acc.check_preemption());
}

TEST(Preemption, TriggersFireOnceAsHfs) {
  Accelerator acc(AcceleratorOptions{.cpu = true});
  EXPECT_FALSE(acc.check_trigger());
  acc.set_trigger();
  EXPECT_TRUE(acc.check_trigger());
  EXPECT_FALSE(acc.check_trigger()) << "the flag is lowered once it fired";
}
