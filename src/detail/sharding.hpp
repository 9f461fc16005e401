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

/// HF's IterableDatasetShard, fed one sample at a time: every process reads the whole stream; of each global
/// batch (batch_size * num_processes samples, or batch_size with split_batches) this process keeps its slice,
/// and at the end of the stream the last, incomplete global batch is completed with the first one's samples
/// (repeated as often as needed) unless drop_last. T is the sample type.
template <class T>
class IterableShard {
 public:
  IterableShard(int64_t batch_size, bool drop_last, const ShardOptions& shard)
      : global_(shard.split_batches ? batch_size : batch_size * shard.num_processes),
        mine_(shard.split_batches ? batch_size / shard.num_processes : batch_size),
        begin_(shard.process_index * mine_),
        drop_last_(drop_last) {}

  /// The stream's next sample; returns this process's slice when it completes a global batch, else nothing.
  std::vector<T> push(T sample) {
    current_.push_back(std::move(sample));
    if (static_cast<int64_t>(current_.size()) < global_) return {};
    if (first_.empty()) first_ = current_;
    return take_slice();
  }

  /// At the end of the stream: this process's slice of the completed last global batch (empty with drop_last or
  /// when the stream ended on a global batch). `real_samples` gets how many of that batch were real.
  std::vector<T> finish(int64_t* real_samples = nullptr) {
    if (real_samples) *real_samples = static_cast<int64_t>(current_.size());
    if (drop_last_ || current_.empty()) return {};
    if (first_.empty()) first_ = current_;
    while (static_cast<int64_t>(current_.size()) < global_)
      current_.insert(current_.end(), first_.begin(), first_.end());
    return take_slice();
  }

 private:
  std::vector<T> take_slice() {
    std::vector<T> out(current_.begin() + begin_, current_.begin() + begin_ + mine_);
    current_.clear();
    return out;
  }
  int64_t global_, mine_, begin_;
  bool drop_last_;
  std::vector<T> current_, first_;
};

/// The epoch order of a loader: 0..n-1, or a permutation from `generator`.
std::vector<int64_t> epoch_order(int64_t size, bool shuffle, at::Generator* generator);

}  // namespace accelerate::detail
