// A test's own scratch folder: named for the process and the running test, so parallel ctest runs and tests in one
// program never share one, and removed with everything in it at the end of the test.
#pragma once

#include <filesystem>
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>

namespace accelerate::testing {

struct TempDir {
  /// `<tmp>/<prefix>_<pid>_<test name>`, emptied if a killed earlier run left it behind.
  explicit TempDir(const std::string& prefix = "accelerate")
      : path(std::filesystem::temp_directory_path() /
             (prefix + "_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;  // a test that failed half way may have left files that cannot go; never throw here
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The path of `name` inside the folder, as a string (for command lines).
  std::string operator/(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

}  // namespace accelerate::testing
