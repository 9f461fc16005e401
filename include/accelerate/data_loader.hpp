// Data loading with HF Accelerate's sharding: batch i goes to rank i mod n, the last round is completed
// cyclically from the start of the epoch (even_batches), or each global batch is split (split_batches).
// Loading and collation run on num_workers threads, a few batches ahead of the training loop, in order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <accelerate/batch.hpp>
#include <accelerate/collate.hpp>
#include <accelerate/dataset.hpp>
#include <accelerate/lifetime.hpp>
#include <accelerate/worker_info.hpp>

namespace accelerate {

class ProcessState;
class GradientState;
namespace detail {
struct DataLoaderAccess;
class LoaderWorkers;
class BatchSource;
class DeviceCopier;
}  // namespace detail

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  /// Shuffle seed (HF's use_seedable_sampler + data_seed): epoch e uses the permutation of seed + e. Unset: a
  /// generator seeded from the global RNG, synchronised from rank 0 at each epoch (HF's default).
  std::optional<int64_t> seed;
  /// Threads that load and collate batches ahead (batch k by worker k mod num_workers), handed out in order:
  /// the batches are the same for any value. 0 loads on the calling thread (PyTorch's default); the default, 1,
  /// keeps one background thread ahead of the training loop.
  int num_workers = 1;
  /// Batches each worker keeps loaded ahead (PyTorch's prefetch_factor).
  int prefetch_factor = 2;
  /// Keep the worker threads between epochs instead of starting them at each (PyTorch's persistent_workers).
  bool persistent_workers = false;
  /// Workers put each batch in page-locked memory, and the loader copies batch k+1 to the GPU on a side stream
  /// while the loop computes step k (PyTorch's pin_memory + non_blocking, plus the overlap of apex's
  /// data_prefetcher); ignored without CUDA.
  bool pin_memory = false;
  /// Samples -> batch (PyTorch's collate_fn): default_collate, pad_collate(...) or your own. Unset: the
  /// dataset's get_batch() (default_collate unless the dataset gathers faster, as TensorDataset does).
  Collate collate;
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
  /// A loader over a stream, sharded as HF's IterableDatasetShard: each process keeps its slice of every global
  /// batch; the last, incomplete one is completed with the first one's samples unless drop_last (even_batches does
  /// not apply). Read by one thread (num_workers >= 1) or the calling thread (0); `shuffle` must be false.
  DataLoader(std::shared_ptr<IterableDataset> stream, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Move-only: the iterator of a range-for owns the epoch. When it is destroyed before the end (a `break`), the
  /// epoch ends there, so a checkpoint taken afterwards records what the next loop will do (a new epoch).
  class Iterator {
   public:
    using value_type = Batch;
    Iterator(Iterator&& other) noexcept
        : loader_(std::exchange(other.loader_, nullptr)), current_(std::move(other.current_)) {}
    Iterator& operator=(Iterator&& other) noexcept;
    Iterator(const Iterator&) = delete;
    Iterator& operator=(const Iterator&) = delete;
    ~Iterator();
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

  /// Batches this process yields per epoch (HF's len of the prepared loader). A stream has no length: ConfigError.
  int64_t size() const;
  /// A loader over an IterableDataset.
  bool is_stream() const { return stream_ != nullptr; }
  /// Samples per global step: batch_size, or batch_size * num_processes unless split_batches.
  int64_t total_batch_size() const;
  /// Samples in the dataset; -1 for a stream.
  int64_t dataset_size() const { return dataset_ ? dataset_->size() : -1; }
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
  /// Lets an Accelerator that prepared this loader see whether it still exists.
  const Lifetime& lifetime() const { return lifetime_; }

 private:
  DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options, std::shared_ptr<IterableDataset> stream);
  friend struct detail::DataLoaderAccess;  // Accelerator::prepare, and tests of the sharding
  void prepare(const ProcessState& state, GradientState& gradient_state, ShardOptions shard, c10::Device device);
  std::vector<std::vector<int64_t>> epoch_indices(bool synchronise);
  bool advance(Batch& out);
  void finish_epoch();
  /// Loads the batch of `indices`, number `in_epoch` of `epoch`, with data_generator() seeded for it; runs on a
  /// worker. Errors become a DataError naming the failing sample.
  Batch load_batch(const std::vector<int64_t>& indices, int64_t epoch, int64_t in_epoch, uint64_t seed) const;
  /// The base seed of this epoch's data_generator() draws (WorkerInfo::seed): new each epoch, different per rank.
  uint64_t epoch_base_seed() const;
  /// Samples -> batch: the options' collate, else default_collate. Runs on a worker or the stream's thread.
  Batch collate(std::vector<Batch>& samples) const;
  /// A loaded batch made ready for the device copy (pinned when the copy may overlap); on the loading thread.
  Batch ready_for_copy(Batch batch) const;
  std::unique_ptr<detail::BatchSource> indexed_epoch(std::vector<std::vector<int64_t>> batches);
  std::unique_ptr<detail::BatchSource> stream_epoch();

  Lifetime lifetime_;
  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  ShardOptions shard_;
  const ProcessState* state_ = nullptr;
  GradientState* gradient_state_ = nullptr;
  c10::Device device_{c10::kCPU};
  at::Generator generator_;
  int64_t epoch_ = 0;
  int64_t skip_ = 0;
  int64_t position_ = 0;  // batches handed out this epoch (after the skipped ones)
  int64_t skipped_this_epoch_ = 0;
  at::Tensor epoch_start_generator_;
  uint64_t epoch_seed_ = 0;  // base seed of this epoch's workers (WorkerInfo::seed, data_generator)
  bool in_epoch_ = false;
  std::unique_ptr<detail::LoaderWorkers> workers_;  // kept between epochs with persistent_workers
  std::shared_ptr<IterableDataset> stream_;
  // The epoch's batches in order (a map-style dataset's or the stream's), then their device copy: with overlap
  // the copier holds the next batch, taken from the source ahead.
  std::unique_ptr<detail::BatchSource> source_;
  std::unique_ptr<detail::DeviceCopier> copier_;
};

}  // namespace accelerate
