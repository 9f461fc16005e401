// find_executable_batch_size's agreement between processes (include/accelerate/find_batch_size.hpp). Every check
// is the same one-element all-reduce: the sum of "I ran out of memory" over the processes. The sync backward()
// makes it while a search is running, a process that ran out of memory makes it in its handler, and a process whose
// function returned makes it once more, so the three always meet in the same collective.
#include <accelerate/find_batch_size.hpp>

#include <accelerate/accelerator.hpp>
#include <accelerate/memory.hpp>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <iostream>

#include "detail/out_of_memory.hpp"

namespace accelerate {
namespace {

bool mentions_out_of_memory(const std::string& message) {
  for (const char* statement : {" out of memory.", "DefaultCPUAllocator: can't allocate memory",
                                "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.", "MPS backend out of memory"}) {
    if (message.find(statement) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

bool is_out_of_memory(const std::exception& error) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) || dynamic_cast<const detail::PeerOutOfMemory*>(&error) ||
      dynamic_cast<const detail::DataOutOfMemory*>(&error)) {
    return true;
  }
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return mentions_out_of_memory(c10_error->what_without_backtrace());
  }
  return dynamic_cast<const Error*>(&error) == nullptr && mentions_out_of_memory(error.what());
}

namespace detail {

int64_t out_of_memory_count(const ProcessState& state, bool here) {
  if (!state.use_distributed()) return here ? 1 : 0;
  return reduce(state, at::full({1}, here ? 1 : 0, at::kLong), Reduction::Sum).item<int64_t>();
}

namespace {

/// The state of one search; every process holds one and they agree at each step (see find_executable_batch_size).
class BatchSizeSearch {
 public:
  BatchSizeSearch(Accelerator& accelerator, const FindBatchSizeOptions& options, bool& out_of_memory_checks);
  ~BatchSizeSearch() { out_of_memory_checks_ = false; }
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
  bool& out_of_memory_checks_;  // the Accelerator's: backward() checks the other processes while it is set
  int64_t batch_size_, global_batch_;
};

BatchSizeSearch::BatchSizeSearch(Accelerator& accelerator, const FindBatchSizeOptions& options,
                                 bool& out_of_memory_checks)
    : accelerator_(accelerator),
      options_(options),
      out_of_memory_checks_(out_of_memory_checks),
      batch_size_(options.starting_batch_size) {
  ACCELERATE_CHECK(options_.starting_batch_size >= 1, ConfigError,
                   "find_executable_batch_size: starting_batch_size must be >= 1, got ", options_.starting_batch_size,
                   ".");
  ACCELERATE_CHECK(options_.min_batch_size >= 1 && options_.min_batch_size <= options_.starting_batch_size, ConfigError,
                   "find_executable_batch_size: min_batch_size must be in 1..starting_batch_size (",
                   options_.starting_batch_size, "), got ", options_.min_batch_size, ".");
  ACCELERATE_CHECK(options_.factor > 0 && options_.factor < 1, ConfigError,
                   "find_executable_batch_size: factor must be in (0, 1), got ", options_.factor, ".");
  global_batch_ = options_.starting_batch_size * accelerator_.gradient_accumulation_steps();
  out_of_memory_checks_ = true;
}

bool BatchSizeSearch::finished() {
  if (out_of_memory_count(accelerator_.state(), false) == 0) return true;
  next_attempt();  // another process ran out of memory after this one's last check
  return false;
}

void BatchSizeSearch::failed() {
  try {
    throw;
  } catch (const PeerOutOfMemory&) {
    // backward()'s check already agreed with the process that ran out of memory.
  } catch (const std::exception& e) {
    if (!is_out_of_memory(e)) throw;
    out_of_memory_count(accelerator_.state(), true);
  }
  next_attempt();
}

void BatchSizeSearch::next_attempt() {
  const int64_t failed = batch_size_;
  accelerator_.free_memory();  // the failed attempt's objects are gone (or about to be): forget them
  int64_t next = static_cast<int64_t>(static_cast<double>(failed) * options_.factor);
  if (options_.keep_global_batch) {
    while (next > 0 && global_batch_ % next != 0) --next;  // the largest divisor of the global batch below
  }
  ACCELERATE_CHECK(next >= options_.min_batch_size, OutOfMemoryError, "find_executable_batch_size: out of memory at ",
                   "batch size ", failed, " on ", accelerator_.num_processes() > 1 ? "some process" : "this process",
                   ", and the next one (", next, ") is below min_batch_size ", options_.min_batch_size,
                   ". Use a smaller model or sequence, mixed precision, activation checkpointing or ZeRO.");
  batch_size_ = next;
  if (options_.keep_global_batch) accelerator_.set_gradient_accumulation_steps(static_cast<int>(global_batch_ / next));
  if (accelerator_.is_main_process()) {
    std::cerr << "accelerate: out of memory at batch size " << failed << "; trying " << batch_size_
              << (options_.keep_global_batch
                      ? detail::concat(" with ", global_batch_ / next, " gradient accumulation steps")
                      : std::string())
              << "." << std::endl;
  }
}

}  // namespace

void run_batch_size_search(Accelerator& accelerator, const std::function<void(int64_t)>& attempt,
                           const FindBatchSizeOptions& options) {
  BatchSizeSearch search(accelerator, options, accelerator.out_of_memory_checks_);
  while (true) {
    try {
      attempt(search.batch_size());
      if (search.finished()) return;
    } catch (const std::exception&) {
      search.failed();
    }
  }
}

}  // namespace detail
}  // namespace accelerate
