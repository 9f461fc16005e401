// A loader over an IterableDataset (detail/batch_source.hpp's stream source): HF's IterableDatasetShard, the last
// batch flagged, errors naming the sample, a resume's skip.
#include <accelerate/accelerate.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/gradient_state.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "detail/data_loader_access.hpp"
#include "loader_fixtures.hpp"
#include "shard_cases.hpp"

using namespace accelerate;
using namespace accelerate::testing;

// A loader over an IterableDataset shards it as HF's IterableDatasetShard (the parity cases), with 0 or 1 loading
// threads; the last batch is flagged with the number of real samples of its global batch.
TEST(StreamLoader, ShardsAsHfAndFlagsTheLastBatch) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  int checked = 0;
  for (const auto& c : kIterableCases) {
    if (c.n == 0) continue;  // an empty stream gives an empty epoch (below)
    for (int workers : {0, 1}) {
      for (int rank = 0; rank < c.world; ++rank) {
        DataLoader loader(std::make_shared<CountingStream>(c.n),
                          {.batch_size = c.batch_size, .drop_last = c.drop_last, .num_workers = workers});
        GradientState gs;
        accelerate::detail::DataLoaderAccess::prepare(loader, state, gs, {c.world, rank, c.split, true},
                                                      c10::Device(c10::kCPU));
        int64_t remainder = -2;
        EXPECT_EQ(stream_batches(loader, &gs, &remainder), c.expected[static_cast<size_t>(rank)])
            << "n=" << c.n << " bs=" << c.batch_size << " world=" << c.world << " rank " << rank;
        const int64_t global = c.split ? c.batch_size : c.batch_size * c.world;
        if (!c.expected[static_cast<size_t>(rank)].empty()) {
          EXPECT_EQ(remainder, c.drop_last ? -1 : c.n % global) << "n=" << c.n << " global " << global;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
  DataLoader empty(std::make_shared<CountingStream>(0), {.batch_size = 2});
  EXPECT_TRUE(stream_batches(empty).empty());
  EXPECT_THROW(empty.size(), ConfigError);
  EXPECT_THROW(DataLoader(std::make_shared<CountingStream>(4), {.shuffle = true}), ConfigError);
}

TEST(StreamLoader, ErrorsNameTheSampleAndSkipResumes) {
  for (int workers : {0, 1}) {
    DataLoader loader(std::make_shared<CountingStream>(50, 37), {.batch_size = 4, .num_workers = workers});
    try {
      stream_batches(loader);
      FAIL() << "no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("reading sample 37 of the stream (epoch 0) failed: truncated record"),
                std::string::npos)
          << e.what();
    }
    DataLoader resumed(std::make_shared<CountingStream>(10), {.batch_size = 3, .num_workers = workers});
    resumed.skip_first_batches(2);
    EXPECT_EQ(stream_batches(resumed), (std::vector<std::vector<int64_t>>{{6, 7, 8}, {9, 0, 1}}));
  }
}
