// find_executable_batch_size (HF's accelerate.utils.find_executable_batch_size) for C++: runs a training function
// with a batch size and, when it runs out of memory, frees cached memory and runs it again with a smaller one,
// with every process agreeing on every attempt.
//
//   auto used = accelerate::find_executable_batch_size(acc, [&](int64_t batch_size) {
//     DataLoader loader(dataset, {.batch_size = batch_size});
//     ... prepare and train ...
//     return batch_size;
//   }, {.starting_batch_size = 64});
#pragma once

#include <cstdint>
#include <exception>
#include <type_traits>

#include <accelerate/error.hpp>

namespace accelerate {

class Accelerator;

struct FindBatchSizeOptions {
  /// The first batch size tried (HF: starting_batch_size=128).
  int64_t starting_batch_size = 128;
  /// No batch size below this is tried: when the next one would be, the search ends with an OutOfMemoryError
  /// (HF stops at 0).
  int64_t min_batch_size = 1;
  /// After an out-of-memory error the batch size becomes int(batch_size * factor) (HF's 0.9).
  double factor = 0.9;
  /// Keep the global batch (batch size x gradient accumulation steps at the start): each new batch size is the
  /// largest divisor of the global batch at most factor x the failed one, and the Accelerator's
  /// gradient_accumulation_steps is raised to match; read it in the function (acc.gradient_accumulation_steps()).
  bool keep_global_batch = false;
};

/// No batch size down to FindBatchSizeOptions::min_batch_size fits.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

/// True for the errors HF's should_reduce_batch_size reduces on: c10::OutOfMemoryError (CUDA), and messages with
/// " out of memory.", "DefaultCPUAllocator: can't allocate memory" (the CPU allocator), "MPS backend out of
/// memory", "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED."; also a peer's out-of-memory error reported to this
/// process. Never accelerate-cpp's own errors.
bool is_out_of_memory(const std::exception& error);

namespace detail {

/// The state of one search; every process holds one and they agree at each step (see find_executable_batch_size).
class BatchSizeSearch {
 public:
  BatchSizeSearch(Accelerator& accelerator, const FindBatchSizeOptions& options);
  ~BatchSizeSearch();
  BatchSizeSearch(const BatchSizeSearch&) = delete;
  BatchSizeSearch& operator=(const BatchSizeSearch&) = delete;
  int64_t batch_size() const { return batch_size_; }
  /// The function returned here: true when it returned on every process, else the next attempt is set up.
  bool finished();
  /// Called in the handler of the function's exception: rethrows what is not an out-of-memory error, else agrees
  /// with the other processes and sets up the next attempt (OutOfMemoryError below the floor).
  void failed();

 private:
  void next_attempt();
  Accelerator& accelerator_;
  FindBatchSizeOptions options_;
  int64_t batch_size_, global_batch_;
};

}  // namespace detail

/// Runs `function(batch_size)` from options.starting_batch_size down, as HF's find_executable_batch_size: on an
/// out-of-memory error (is_out_of_memory) it calls accelerator.free_memory() (the failed attempt's prepared objects
/// are forgotten and the device's cached memory freed: create and prepare the model, optimizer and loaders inside
/// the function), multiplies the batch size by options.factor and calls again; progress goes to the main process's
/// stderr. Returns what the function returns. Afterwards the Accelerator still refers to what the successful
/// attempt prepared: call accelerator.free_memory() once those objects are gone.
///
/// With several processes, all take the same batch size on every attempt: each sync backward() first checks
/// (one small all-reduce) that no process has run out of memory since the last check, and a process that has
/// meets the others there; the function's end is one more such check. An out-of-memory error on one process in
/// the forward pass, the loss or the data ends the attempt on every process. One raised inside backward or
/// between other collectives (evaluation's gathers) is not recoverable this way: those collectives then fail
/// after the timeout, with the hang report. Other exceptions propagate unchanged.
/// Throws OutOfMemoryError when min_batch_size runs out of memory, ConfigError for bad options.
template <class F>
auto find_executable_batch_size(Accelerator& accelerator, F&& function, const FindBatchSizeOptions& options = {}) {
  using Result = std::invoke_result_t<F&, int64_t>;
  detail::BatchSizeSearch search(accelerator, options);
  while (true) {
    try {
      if constexpr (std::is_void_v<Result>) {
        function(search.batch_size());
        if (search.finished()) return;
      } else {
        Result result = function(search.batch_size());
        if (search.finished()) return result;
      }
    } catch (const std::exception&) {
      search.failed();
    }
  }
}

}  // namespace accelerate
