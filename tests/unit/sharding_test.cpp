// Sharding equals HF Accelerate's: BatchSamplerShard for map-style datasets, IterableDatasetShard for streams. The
// expected lists come from HF itself (tests/parity/generate_*_cases.py), for sequential and seeded shuffled orders.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "detail/sharding.hpp"
#include "shard_cases.hpp"

using namespace accelerate::testing;

TEST(Sharding, MatchesHfForEveryCase) {
  ASSERT_GT(kShardCases.size(), 300u);
  for (const auto& c : kShardCases) {
    std::vector<int64_t> order;
    if (c.seed < 0) {
      order = accelerate::detail::epoch_order(c.size, false, nullptr);
    } else {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.seed + c.epoch));
      order = accelerate::detail::epoch_order(c.size, true, &gen);  // SeedableRandomSampler: seed + epoch
    }
    auto batches = accelerate::detail::make_batches(order, c.batch_size, c.drop_last);
    for (int rank = 0; rank < c.world; ++rank) {
      auto got =
          accelerate::detail::shard_batches(batches, c.batch_size, c.drop_last, {c.world, rank, c.split, c.even});
      EXPECT_EQ(got, c.expected[rank]) << case_name(c) << " rank " << rank;
    }
  }
}

TEST(IterableShard, MatchesHf) {
  ASSERT_GT(kIterableCases.size(), 200u);
  for (const auto& c : kIterableCases) {
    for (int rank = 0; rank < c.world; ++rank) {
      accelerate::detail::IterableShard<int64_t> shard(c.batch_size, c.drop_last, {c.world, rank, c.split, true});
      std::vector<int64_t> samples;
      for (int64_t i = 0; i < c.n; ++i) {
        for (auto s : shard.push(i)) samples.push_back(s);
      }
      for (auto s : shard.finish()) samples.push_back(s);
      std::vector<std::vector<int64_t>> got;
      const int64_t per_process = c.split ? c.batch_size / c.world : c.batch_size;
      for (size_t i = 0; i < samples.size(); i += static_cast<size_t>(per_process)) {
        got.emplace_back(samples.begin() + static_cast<std::ptrdiff_t>(i),
                         samples.begin() + static_cast<std::ptrdiff_t>(std::min(samples.size(), i + per_process)));
      }
      EXPECT_EQ(got, c.expected[static_cast<size_t>(rank)])
          << "n=" << c.n << " bs=" << c.batch_size << " world=" << c.world << " split=" << c.split
          << " drop_last=" << c.drop_last << " rank " << rank;
    }
  }
}
