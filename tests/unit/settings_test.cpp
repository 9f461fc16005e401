// The settings table and its parsers (one per kind), and reading settings from an injected environment.
#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>

#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <set>

#include "error_of.hpp"

using namespace accelerate;
using accelerate::testing::error_of;

TEST(Settings, ParsersByKind) {
  EXPECT_EQ(parse_int_variable("X", "-3"), -3);
  EXPECT_NE(
      error_of<ConfigError>([] { parse_int_variable("X", "3x", "Fix it."); }).find("X='3x' is not an integer. Fix it."),
      std::string::npos);
  EXPECT_EQ(parse_seconds_variable("T", "1.5", true), std::chrono::milliseconds(1500));
  EXPECT_EQ(parse_seconds_variable("T", "0", false), std::chrono::milliseconds(0));
  EXPECT_NE(error_of<ConfigError>([] {
              parse_seconds_variable("T", "0", true);
            }).find("T='0' is not a positive number of seconds"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([] { parse_seconds_variable("T", "1e30", false); }).find("up to 31536000"),
            std::string::npos);
  EXPECT_EQ(parse_choice_variable("C", "B", {"a", "b"}), 1u);
  EXPECT_NE(error_of<ConfigError>([] {
              parse_choice_variable("C", "z", {"a", "b"});
            }).find("C='z' is not one of a, b."),
            std::string::npos);
  EXPECT_EQ(parse_log_level("WARN"), LogLevel::Warning);
  EXPECT_EQ(parse_mixed_precision("bf16"), MixedPrecision::Bf16);
  EXPECT_NE(error_of<ConfigError>([] {
              parse_mixed_precision("fp8", "here");
            }).find("here: mixed_precision fp8 is not supported"),
            std::string::npos);
  // A flag or config key left empty (a trial of 2026-12-04: `--mixed_precision ""` trained in fp32).
  EXPECT_NE(error_of<ConfigError>([] {
              parse_mixed_precision("", "--mixed_precision");
            }).find("--mixed_precision: mixed_precision is empty; give one of no, fp16, bf16"),
            std::string::npos);
}

TEST(Settings, ReadOnceFromAnInjectedEnvironment) {
  const auto s = read_environment_settings({{"ACCELERATE_MIXED_PRECISION", "fp16"},
                                            {"ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4"},
                                            {"ACCELERATE_USE_CPU", "yes"},
                                            {"ACCELERATE_LOG_LEVEL", "error"},
                                            {"ACCELERATE_CPP_TIMEOUT", "12"},
                                            {"ACCELERATE_CPP_HANG_REPORT", "off"},
                                            {"GLOO_SOCKET_IFNAME", "eth7"}});
  EXPECT_EQ(s.mixed_precision, MixedPrecision::Fp16);
  EXPECT_EQ(s.gradient_accumulation_steps, 4);
  EXPECT_TRUE(s.use_cpu);
  EXPECT_EQ(s.log_level, LogLevel::Error);
  EXPECT_EQ(s.timeout, std::chrono::milliseconds(12000));
  EXPECT_FALSE(s.hang_report);
  EXPECT_EQ(s.launch.gloo_socket_ifname, "eth7");
  // Unset stays unset, so an option can take precedence.
  const auto empty = read_environment_settings({});
  EXPECT_FALSE(empty.mixed_precision.has_value());
  EXPECT_FALSE(empty.gradient_accumulation_steps.has_value());
  EXPECT_FALSE(empty.timeout.has_value());
  EXPECT_TRUE(empty.hang_report);
  // Each bad value names its variable.
  for (const auto& [name, value] : std::map<std::string, std::string>{{"ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "0"},
                                                                      {"ACCELERATE_USE_CPU", "maybe"},
                                                                      {"ACCELERATE_LOG_LEVEL", "loud"},
                                                                      {"ACCELERATE_CPP_STALL_WARNING", "-1"},
                                                                      {"ACCELERATE_MIXED_PRECISION", "fp32"}}) {
    const auto what = error_of<ConfigError>([&] { read_environment_settings({{name, value}}); });
    EXPECT_NE(what.find(name), std::string::npos) << name << ": " << what;
  }
}

TEST(Settings, TheTableNamesEveryVariableOnce) {
  std::set<std::string> seen;
  for (const auto& v : environment_variables()) {
    EXPECT_TRUE(seen.insert(v.name).second) << v.name << " is listed twice";
    EXPECT_EQ(find_environment_variable(v.name), &v);
  }
  EXPECT_NE(find_environment_variable(env_var::kMixedPrecision), nullptr);
}
