// find_executable_batch_size in one process: HF's sequence of batch sizes, the errors it reduces on, the floor,
// keep_global_batch, and errors that are not retried. (The agreement between processes: training_worker.)
#include <accelerate/accelerate.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <stdexcept>

using namespace accelerate;

namespace {

AcceleratorOptions cpu() {
  AcceleratorOptions o;
  o.cpu = true;
  return o;
}

[[noreturn]] void cuda_oom() {
  TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2 GiB");
}

}  // namespace

TEST(FindExecutableBatchSize, ReducesByHfsFactorUntilItFits) {
  Accelerator acc(cpu());
  std::vector<int64_t> tried;
  const auto used = find_executable_batch_size(acc, [&](int64_t b) {
    tried.push_back(b);
    if (b > 100) cuda_oom();
    return b;
  });
  EXPECT_EQ(used, 92);
  EXPECT_EQ(tried, (std::vector<int64_t>{128, 115, 103, 92}));  // int(b * 0.9), as HF
}

TEST(FindExecutableBatchSize, KnowsTheOutOfMemoryErrors) {
  try {
    cuda_oom();
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_out_of_memory(e));
  }
  try {
    TORCH_CHECK(false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8000000000 bytes.");
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_out_of_memory(e));  // the CPU allocator's failure is a plain c10::Error
  }
  EXPECT_TRUE(is_out_of_memory(std::runtime_error("HIP out of memory. Tried to allocate")));
  EXPECT_FALSE(is_out_of_memory(std::runtime_error("shape mismatch")));
  EXPECT_FALSE(is_out_of_memory(ConfigError("config says: out of memory.")));  // our own errors never
}

TEST(FindExecutableBatchSize, FloorKeepGlobalBatchAndOtherErrors) {
  Accelerator acc(cpu());
  EXPECT_THROW(find_executable_batch_size(acc, [](int64_t) -> int { cuda_oom(); }, {.starting_batch_size = 8}),
               OutOfMemoryError);
  int accumulation = 0;
  const auto used = find_executable_batch_size(acc,
                                               [&](int64_t b) {
                                                 accumulation = acc.gradient_accumulation_steps();
                                                 if (b > 20) cuda_oom();
                                                 return b;
                                               },
                                               {.starting_batch_size = 48, .keep_global_batch = true});
  EXPECT_EQ(used, 16);  // divisors of 48 at most 0.9x: 48 -> 24 -> 16
  EXPECT_EQ(accumulation, 3);
  acc.set_gradient_accumulation_steps(1);
  int calls = 0;
  EXPECT_THROW(find_executable_batch_size(acc,
                                          [&](int64_t) -> int {
                                            ++calls;
                                            throw std::logic_error("a bug, not memory");
                                          }),
               std::logic_error);
  EXPECT_EQ(calls, 1);
  EXPECT_THROW(find_executable_batch_size(acc, [](int64_t b) { return b; }, {.starting_batch_size = 0}), ConfigError);
  EXPECT_THROW(find_executable_batch_size(acc, [](int64_t b) { return b; }, {.factor = 1.0}), ConfigError);
}

TEST(Accelerator, FreeMemoryForgetsWhatWasPrepared) {
  Accelerator acc(cpu());
  auto model = std::make_shared<torch::nn::LinearImpl>(2, 2);
  torch::optim::SGD sgd(model->parameters(), 0.1);
  acc.prepare(model);
  acc.prepare(sgd);
  EXPECT_THROW(acc.prepare(sgd), ConfigError);  // prepared twice
  acc.free_memory();
  EXPECT_NO_THROW(acc.prepare(sgd));  // a new attempt may prepare an object at the same address
  EXPECT_EQ(acc.step(), 0);
}
