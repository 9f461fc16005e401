// check_preemption and HF's set_trigger/check_trigger in a world of one (the agreement across processes is
// tested with the launcher: tests/distributed/launcher_test.cpp, LaunchPreemption).
#include <accelerate/accelerate.hpp>

#include <csignal>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(Preemption, ASigtermAfterTheFirstCheckIsSeenByTheNextAndOnlyOnce) {
  Accelerator acc(AcceleratorOptions{.cpu = true});
  EXPECT_FALSE(acc.check_preemption());  // installs the handlers
  ASSERT_EQ(::raise(SIGTERM), 0);        // without the handler this process would end here
  EXPECT_TRUE(acc.check_preemption());
  EXPECT_TRUE(acc.check_preemption());  // the request stays: the process is being stopped
  struct sigaction current {};
  ::sigaction(SIGTERM, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_DFL) << "a second SIGTERM must stop a program that does not save";
}

TEST(Preemption, TriggersFireOnceAsHfs) {
  Accelerator acc(AcceleratorOptions{.cpu = true});
  EXPECT_FALSE(acc.check_trigger());
  acc.set_trigger();
  EXPECT_TRUE(acc.check_trigger());
  EXPECT_FALSE(acc.check_trigger()) << "the flag is lowered once it fired";
}
