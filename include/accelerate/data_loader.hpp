// Data loading with HF Accelerate's sharding: batch i goes to rank i mod n, the last round is completed
// cyclically from the start of the epoch (even_batches), or each global batch is split (split_batches).
// Loading runs on a background thread, a few batches ahead of the training loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <torch/data/example.h>

namespace accelerate {

class ProcessState;
class GradientState;
namespace detail {
struct DataLoaderAccess;
}

/// One batch (or sample): `data` and `target`, as torch::data::Example.
using Batch = torch::data::Example<>;

/// A map-style dataset. get() is called from the loader's background thread.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Batch get(int64_t index) const = 0;
  /// The samples at `indices`, stacked along a new dim 0. Override when the data allows a faster gather.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
};

/// Tensors whose dim 0 indexes samples (like torch.utils.data.TensorDataset).
class TensorDataset final : public Dataset {
 public:
  TensorDataset(at::Tensor data, at::Tensor targets);
  int64_t size() const override { return data_.size(0); }
  Batch get(int64_t index) const override { return {data_[index], targets_[index]}; }
  Batch get_batch(const std::vector<int64_t>& indices) const override;

 private:
  at::Tensor data_, targets_;
};

/// Adapts a torch::data map dataset (e.g. torch::data::datasets::MNIST).
template <class TorchDataset>
std::shared_ptr<Dataset> from_torch_dataset(TorchDataset dataset) {
  class Adapter final : public Dataset {
   public:
    explicit Adapter(TorchDataset d) : d_(std::move(d)) {}
    int64_t size() const override { return static_cast<int64_t>(d_.size().value()); }
    Batch get(int64_t index) const override { return const_cast<TorchDataset&>(d_).get(static_cast<size_t>(index)); }

   private:
    TorchDataset d_;
  };
  return std::make_shared<Adapter>(std::move(dataset));
}

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  /// Shuffle seed (HF's use_seedable_sampler + data_seed): epoch e uses the permutation of seed + e. Unset: a
  /// generator seeded from the global RNG, synchronised from rank 0 at each epoch (HF's default).
  std::optional<int64_t> seed;
  /// Batches loaded ahead on the background thread (0: load on the calling thread).
  int prefetch = 2;
};

/// How a loader is split between processes (set by Accelerator::prepare).
struct ShardOptions {
  int num_processes = 1;
  int process_index = 0;
  bool split_batches = false;
  bool even_batches = true;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  class Iterator {
   public:
    using value_type = Batch;
    Batch& operator*() { return current_; }
    Iterator& operator++();
    bool operator!=(const Iterator& other) const { return loader_ != other.loader_; }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader) : loader_(loader) {}
    DataLoader* loader_;
    Batch current_;
  };

  /// Starts an epoch: synchronises the shuffle across ranks, computes this rank's batches, starts loading.
  Iterator begin();
  Iterator end() { return Iterator(nullptr); }

  /// Batches this process yields per epoch (HF's len of the prepared loader).
  int64_t size() const;
  /// Samples per global step: batch_size, or batch_size * num_processes unless split_batches.
  int64_t total_batch_size() const;
  int64_t dataset_size() const { return dataset_->size(); }
  const DataLoaderOptions& options() const { return options_; }
  const ShardOptions& shard() const { return shard_; }
  /// Epochs started so far (HF's iteration); set_epoch changes the next one's shuffle.
  int64_t epoch() const { return epoch_; }
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  /// The next epoch starts after `num_batches` of this process's batches (HF's skip_first_batches).
  void skip_first_batches(int64_t num_batches);
  /// This rank's batch index lists for the next epoch (what begin() will load).
  std::vector<std::vector<int64_t>> peek_epoch_indices();

  /// Where the loader is, for checkpoints: the epoch, the batches of it already handed out, and the shuffle
  /// generator's state at the epoch's start. restore() makes the next begin() continue from there.
  struct Position {
    int64_t epoch = 0;
    int64_t batches = 0;
    at::Tensor generator_state;
  };
  Position position() const;
  void restore(const Position& position);

  bool is_prepared() const { return state_ != nullptr; }
  /// The process state given by prepare (nullptr before).
  const ProcessState* state() const { return state_; }

 private:
  friend struct detail::DataLoaderAccess;  // Accelerator::prepare, and tests of the sharding
  void prepare(const ProcessState& state, GradientState& gradient_state, ShardOptions shard, c10::Device device);
  class Prefetcher;
  std::vector<std::vector<int64_t>> epoch_indices(bool synchronise);
  bool advance(Batch& out);
  void finish_epoch();

  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  ShardOptions shard_;
  const ProcessState* state_ = nullptr;
  GradientState* gradient_state_ = nullptr;
  c10::Device device_{c10::kCPU};
  at::Generator generator_;
  int64_t epoch_ = 0;
  int64_t skip_ = 0;
  int64_t position_ = 0, count_ = 0;
  int64_t skipped_this_epoch_ = 0;
  at::Tensor epoch_start_generator_;
  std::unique_ptr<Prefetcher> prefetcher_;
};

}  // namespace accelerate
