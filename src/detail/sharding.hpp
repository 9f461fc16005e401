// Internal: the data loader's index arithmetic (torch's samplers, HF's BatchSamplerShard), pure functions that the
// parity tests check against HF's own output.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>

#include <accelerate/data_loader.hpp>

namespace accelerate::detail {

/// torch's BatchSampler over an index order.
std::vector<std::vector<int64_t>> make_batches(const std::vector<int64_t>& order, int64_t batch_size, bool drop_last);

/// HF's BatchSamplerShard: the batches `shard.process_index` yields, from the unsharded `batches`.
std::vector<std::vector<int64_t>> shard_batches(const std::vector<std::vector<int64_t>>& batches, int64_t batch_size,
                                                bool drop_last, const ShardOptions& shard);

/// The epoch order of a loader: 0..n-1, or a permutation from `generator`.
std::vector<int64_t> epoch_order(int64_t size, bool shuffle, at::Generator* generator);

}  // namespace accelerate::detail
