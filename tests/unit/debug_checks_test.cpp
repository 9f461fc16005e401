// Debug mode's device rule (src/debug_checks.cpp), pure: which devices a collective's tensors may be on.
#include <gtest/gtest.h>

#include "detail/communicator.hpp"

using accelerate::detail::debug_device_problem;
using c10::DeviceType;

// Issue 11, item 2: in a GPU job, CPU tensors are fine (torch sends them through Gloo): the example's reduce of a
// CPU double under `launch --debug` used to fail.
TEST(DebugChecks, CpuTensorsAreFineInAGpuJob) {
  EXPECT_EQ(debug_device_problem(DeviceType::CPU, DeviceType::CPU, DeviceType::CUDA), "");
  EXPECT_EQ(debug_device_problem(DeviceType::CUDA, DeviceType::CUDA, DeviceType::CUDA), "");
  EXPECT_EQ(debug_device_problem(DeviceType::CPU, DeviceType::CPU, DeviceType::CPU), "");
}

TEST(DebugChecks, OtherDevicesAndMixedRanksAreProblems) {
  EXPECT_EQ(debug_device_problem(DeviceType::CUDA, DeviceType::CPU, DeviceType::CUDA),
            "tensors on different device types on different ranks");
  EXPECT_NE(
      debug_device_problem(DeviceType::Meta, DeviceType::Meta, DeviceType::CUDA).find("neither the CPU nor the cuda"),
      std::string::npos)
      << debug_device_problem(DeviceType::Meta, DeviceType::Meta, DeviceType::CUDA);
  EXPECT_NE(debug_device_problem(DeviceType::CUDA, DeviceType::CUDA, DeviceType::CPU), "");
}
