// Where an epoch's batches come from, in order: a map-style dataset's index batches (loaded by the worker threads,
// or on the calling thread without workers) or a stream (read ahead on one thread). The DataLoader's one pipeline
// on top (the device copy and its overlap, the end-of-loader flag, the position a checkpoint records) is the same
// for both.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <accelerate/batch.hpp>

#include "detail/loader_workers.hpp"
#include "detail/stream_reader.hpp"

namespace accelerate::detail {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// Whether a batch remains; a stream reads its next batch to know (a read's failure is thrown here).
  virtual bool has_next() = 0;
  /// The next batch, after has_next() said there is one; a failure to load it is thrown here, in its turn.
  virtual Batch next() = 0;
  /// Real samples of the epoch's last global batch (len % total batch size), -1 when it is full or dropped
  /// (drop_last); a stream knows it once has_next() is false.
  virtual int64_t remainder() const = 0;
};

/// A map-style dataset's epoch: `batches` (this rank's sample indices, resume skip applied) loaded by `workers`
/// (started here with the epoch's `base_seed`), or by `load` on the calling thread when `workers` is null.
std::unique_ptr<BatchSource> indexed_source(std::vector<std::vector<int64_t>> batches, LoaderWorkers* workers,
                                            LoadBatch load, uint64_t base_seed, int64_t remainder);

/// A stream's epoch: `produce` returns the next collated batch or nullopt at the end, and stores the remainder in
/// `remainder` then; with `background` one thread keeps `depth` batches ready. The first `skip` batches (a resume)
/// are read and dropped.
std::unique_ptr<BatchSource> stream_source(std::function<std::optional<Batch>()> produce, bool background, int depth,
                                           int64_t skip, std::shared_ptr<std::atomic<int64_t>> remainder);

}  // namespace accelerate::detail
