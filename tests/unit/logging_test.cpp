// get_logger: levels (from options and from the environment the state read), the main-process rule.
#include <accelerate/accelerate.hpp>

#include <cstdio>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(Logging, LevelsAndMainProcessOnly) {
  ProcessState state(ProcessStateOptions{.cpu = true});
  auto logger = get_logger(state, "unit", LogLevel::Warning);
  ::testing::internal::CaptureStderr();
  logger.info("hidden");
  logger.warning("shown ", 42);
  logger.log(LogLevel::Error, "every process", {.main_process_only = false});
  const auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("hidden"), std::string::npos) << err;
  EXPECT_NE(err.find(" - WARNING - unit - [RANK 0] shown 42\n"), std::string::npos) << err;
  EXPECT_NE(err.find(" - ERROR - unit - [RANK 0] every process\n"), std::string::npos) << err;
  ProcessState debug_state({{"ACCELERATE_LOG_LEVEL", "debug"}}, ProcessStateOptions{.cpu = true});
  EXPECT_EQ(get_logger(debug_state, "unit").level(), LogLevel::Debug);
  EXPECT_THROW(ProcessState({{"ACCELERATE_LOG_LEVEL", "loud"}}, ProcessStateOptions{.cpu = true}), ConfigError);
}
