// HF Accelerate's own sharding of the cases in tests/parity/ (generated there by running HF): BatchSamplerShard's
// per-rank batches for map-style datasets, IterableDatasetShard's for streams.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <accelerate/error.hpp>

namespace accelerate::testing {

using Lists = std::vector<std::vector<std::vector<int64_t>>>;  // per rank, per batch, the sample indices

struct ShardCase {
  int64_t size, batch_size;
  int world;
  bool even, split, drop_last;
  int64_t seed, epoch;  // seed < 0: sequential order
  Lists expected;
};
inline const std::vector<ShardCase> kShardCases = {
#include "../parity/shard_cases.inc"
};

inline std::string case_name(const ShardCase& c) {
  return accelerate::detail::concat("n=", c.size, " bs=", c.batch_size, " world=", c.world, " even=", c.even,
                                    " split=", c.split, " drop_last=", c.drop_last, " seed=", c.seed,
                                    " epoch=", c.epoch);
}

struct IterableCase {
  int64_t n, batch_size;
  int world;
  bool split, drop_last;
  Lists expected;
};
inline const std::vector<IterableCase> kIterableCases = {
#include "../parity/iterable_shard_cases.inc"
};

}  // namespace accelerate::testing
