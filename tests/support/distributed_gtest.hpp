// main() of a GoogleTest program that runs in every rank: one ProcessState (one rendezvous) for all tests, and a
// verdict agreed by every rank, so that a failure on one rank fails them all and the launcher reports it.
#pragma once

#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <cstdlib>
#include <iostream>
#include <memory>

namespace accelerate::testing {

inline int run_distributed_tests(int argc, char** argv, std::shared_ptr<ProcessState>& state, const char* program) {
  ::testing::InitGoogleTest(&argc, argv);
  try {
    // CPU unless ACCELERATE_TEST_DEVICE=cuda (the GPU check runs the same tests on the rank's GPU).
    const char* device = std::getenv("ACCELERATE_TEST_DEVICE");
    const bool cuda = device && std::string(device) == "cuda";
    // ACCELERATE_TEST_BACKEND=gloo: Gloo with CUDA tensors (two ranks can then share one GPU).
    const char* backend = std::getenv("ACCELERATE_TEST_BACKEND");
    state = std::make_shared<ProcessState>(ProcessStateOptions{.cpu = !cuda, .backend = backend ? backend : ""});
    if (cuda && !state->device().is_cuda()) {
      std::cerr << program << ": ACCELERATE_TEST_DEVICE=cuda but no CUDA device is available" << std::endl;
      return 1;
    }
    const int rc = RUN_ALL_TESTS();
    const auto failures = reduce(*state, at::full({1}, rc != 0 ? 1 : 0, at::kLong), Reduction::Sum);
    state->destroy_process_group();
    return failures.item<int64_t>() ? 1 : 0;
  } catch (const Error& e) {
    std::cerr << program << ": " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace accelerate::testing
