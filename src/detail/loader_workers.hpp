// The loader's worker threads: batch k of an epoch is loaded and collated by worker k mod num_workers, at most
// prefetch_factor batches ahead per worker, and handed out in order (PyTorch's DataLoader rules, with threads).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <accelerate/batch.hpp>
#include <accelerate/worker_info.hpp>

namespace accelerate::detail {

/// Loads batch `ordinal` (its sample indices given); runs on a worker thread.
using LoadBatch = std::function<Batch(int64_t ordinal, const std::vector<int64_t>& indices)>;

class LoaderWorkers {
 public:
  LoaderWorkers(int num_workers, int prefetch_factor);
  ~LoaderWorkers();  // stops and joins every worker promptly (a get() under way is finished first)
  LoaderWorkers(const LoaderWorkers&) = delete;
  LoaderWorkers& operator=(const LoaderWorkers&) = delete;

  /// Starts an epoch's batches (the previous epoch's are dropped). `base_seed` is the epoch's (WorkerInfo::seed).
  void start(std::vector<std::vector<int64_t>> batches, LoadBatch load, uint64_t base_seed);
  /// The next batch in order; rethrows the error of the batch that failed, in its turn.
  Batch next();

 private:
  struct Slot {
    std::deque<Batch> ready;
    std::exception_ptr error;
  };
  void run(int worker);

  int num_workers_, prefetch_factor_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::vector<int64_t>> batches_;
  LoadBatch load_;
  uint64_t base_seed_ = 0;
  uint64_t generation_ = 0;  // bumped by start(): workers drop what they loaded for an earlier epoch
  std::vector<Slot> slots_;  // one per worker
  int64_t next_ = 0;         // the next batch next() returns
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

/// RAII: while alive, data_generator() on this thread is a generator seeded for batch `ordinal` of an epoch
/// whose base seed is `base_seed`; afterwards it is what it was.
class [[nodiscard]] BatchSeedScope {
 public:
  BatchSeedScope(uint64_t base_seed, int64_t ordinal);
  ~BatchSeedScope();
  BatchSeedScope(const BatchSeedScope&) = delete;
  BatchSeedScope& operator=(const BatchSeedScope&) = delete;

 private:
  bool had_previous_;
  at::Generator previous_;
};

/// Makes `info` this thread's WorkerInfo (get_worker_info()); null clears it.
void set_worker_info(const WorkerInfo* info);

}  // namespace accelerate::detail
