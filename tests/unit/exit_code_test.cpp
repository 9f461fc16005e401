// run_main: the exit code of the error that ended a program, and its message as a user should read it.
#include <accelerate/error.hpp>
#include <accelerate/exit_code.hpp>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

TEST(RunMain, AnErrorIsAMessageAndAnExitCode) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(accelerate::run_main("prog: ", []() -> int { throw accelerate::ConfigError("bad --lr"); }), 2);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "prog: bad --lr\n");
  EXPECT_EQ(accelerate::run_main("prog: ", []() -> int { throw std::runtime_error("disk full"); }), 1);
  EXPECT_EQ(accelerate::run_main("prog: ", [] { return 75; }), 75);
}

// A LibTorch error (a junk file read by torch's MNIST reader, a shape mismatch) prints its message, not c10's
// stack trace (a trial of 2026-12-04 found "Exception raised from expect_int32 at .../mnist.cpp:44 ...").
TEST(RunMain, ALibTorchErrorIsPrintedWithoutItsStackTrace) {
  try {
    TORCH_CHECK(false, "probe");
  } catch (const c10::Error& e) {
    ASSERT_NE(std::string(e.what()).find("Exception raised from"), std::string::npos)
        << "c10's what() has no stack trace here: this test would not see one printed";
  }
  ::testing::internal::CaptureStderr();
  const int code = accelerate::run_main("prog: ", []() -> int {
    TORCH_CHECK(false, "Expected to read number 2049 but found 1234 instead");
    return 0;
  });
  const auto said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 1);
  EXPECT_NE(said.find("prog: Expected to read number 2049 but found 1234 instead"), std::string::npos) << said;
  EXPECT_EQ(said.find("Exception raised from"), std::string::npos) << said;
  EXPECT_EQ(said.find("frame #"), std::string::npos) << said;
}
