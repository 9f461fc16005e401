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
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

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
/// The search itself (src/find_batch_size.cpp): calls `attempt(batch_size)` until one returns on every process.
void run_batch_size_search(Accelerator& accelerator, const std::function<void(int64_t)>& attempt,
                           const FindBatchSizeOptions& options);
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
  if constexpr (std::is_void_v<Result>) {
    detail::run_batch_size_search(
        accelerator, [&](int64_t batch_size) { function(batch_size); }, options);
  } else {
    std::optional<Result> result;  // the last attempt's: the one that returned on every process
    detail::run_batch_size_search(
        accelerator, [&](int64_t batch_size) { result.emplace(function(batch_size)); }, options);
    return std::move(*result);
  }
}

}  // namespace accelerate
