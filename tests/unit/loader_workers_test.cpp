// The loader's worker threads (detail/loader_workers.hpp): the same batches for any worker count and prefetch
// depth, augmentation drawn anew each epoch, a failing sample named in its turn, persistent workers.
#include <accelerate/accelerate.hpp>
#include <accelerate/data_loader.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "loader_fixtures.hpp"

using namespace accelerate;
using namespace accelerate::testing;

// Batches (random augmentation included) are bitwise the same for 0, 1 and 4 workers, and after skipping into the
// epoch (a resume) the remaining batches are the same as the uninterrupted epoch's.
TEST(DataLoaderWorkers, SameBatchesForAnyWorkerCountAndAfterASkip) {
  DataLoaderOptions o{.batch_size = 3, .shuffle = true, .seed = 11, .collate = pad_collate()};
  o.num_workers = 0;
  const auto reference = one_epoch(o, 29);
  ASSERT_EQ(reference.size(), 10u);
  for (int workers : {1, 4}) {
    o.num_workers = workers;
    for (int factor : {1, 3}) {
      o.prefetch_factor = factor;
      const auto got = one_epoch(o, 29);
      ASSERT_EQ(got.size(), reference.size());
      for (size_t k = 0; k < got.size(); ++k)
        EXPECT_TRUE(same(got[k], reference[k])) << workers << " workers, batch " << k;
    }
    const auto resumed = one_epoch(o, 29, /*skip=*/4);
    ASSERT_EQ(resumed.size(), 6u);
    for (size_t k = 0; k < resumed.size(); ++k) EXPECT_TRUE(same(resumed[k], reference[k + 4])) << "batch " << k + 4;
  }
  EXPECT_FALSE(at::equal(reference[0].at("noise")[0], reference[0].at("noise")[1]));  // the noise is random
}

// An unshuffled loader's augmentation is drawn anew each epoch (as torch's base seed is), still the same for any
// worker count, and a resume at the second epoch draws that epoch's numbers again.
TEST(DataLoaderWorkers, AugmentationDrawsAreNewEachEpochWithoutShuffling) {
  auto noise_of = [](DataLoader& loader) {
    std::vector<at::Tensor> out;
    for (auto& b : loader) out.push_back(b.at("noise"));
    return out;
  };
  std::vector<at::Tensor> reference;
  for (int workers : {0, 1, 4}) {
    DataLoaderOptions o{.batch_size = 3, .num_workers = workers, .collate = pad_collate()};
    at::manual_seed(3);  // the loader's generator starts from the global one
    DataLoader loader(std::make_shared<NoisyDataset>(12), o);
    const auto first = noise_of(loader);
    const auto after_first = loader.position();
    const auto second = noise_of(loader);
    ASSERT_EQ(first.size(), 4u);
    ASSERT_EQ(second.size(), 4u);
    for (size_t k = 0; k < first.size(); ++k)
      EXPECT_FALSE(at::equal(first[k], second[k])) << workers << " workers: batch " << k << " repeats its draws";
    if (reference.empty()) reference = second;
    for (size_t k = 0; k < second.size(); ++k) EXPECT_TRUE(at::equal(second[k], reference[k])) << workers;
    DataLoader resumed(std::make_shared<NoisyDataset>(12), o);
    resumed.restore({after_first.epoch, 2, after_first.generator_state});
    const auto rest = noise_of(resumed);
    ASSERT_EQ(rest.size(), 2u);
    EXPECT_TRUE(at::equal(rest[0], second[2]));
    EXPECT_TRUE(at::equal(rest[1], second[3]));
  }
}

// A dataset that throws on sample 37: the loop gets a DataError naming 37, in the batch's turn, for any worker
// count; the loader (and its workers) can then be destroyed mid-epoch without hanging.
TEST(DataLoaderWorkers, AFailingSampleIsNamed) {
  for (int workers : {0, 1, 3}) {
    DataLoader loader(std::make_shared<NoisyDataset>(60, 37),
                      {.batch_size = 4, .num_workers = workers, .collate = pad_collate()});
    int64_t delivered = 0;
    try {
      for (auto& batch : loader) {
        (void)batch;
        ++delivered;
      }
      FAIL() << "no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("loading sample 37 (batch 9 of epoch 0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cannot decode this sample"), std::string::npos) << e.what();
    }
    EXPECT_EQ(delivered, 9) << workers << " workers: every batch before the failing one arrives";
  }
}

TEST(DataLoaderWorkers, PersistentWorkersAndEarlyExit) {
  DataLoader loader(
      std::make_shared<NoisyDataset>(40),
      {.batch_size = 2, .seed = 3, .num_workers = 2, .persistent_workers = true, .collate = pad_collate()});
  std::vector<Batch> first, second;
  for (auto& b : loader) first.push_back(b);
  for (auto& b : loader) {
    second.push_back(b);
    if (second.size() == 3) break;  // leaves mid-epoch: the next begin() starts a fresh epoch
  }
  int64_t third = 0;
  for (auto& b : loader) {
    (void)b;
    ++third;
  }
  EXPECT_EQ(first.size(), 20u);
  EXPECT_EQ(third, 20);
  EXPECT_FALSE(same(first[0], second[0]));  // another epoch: other noise
}
