// Reading a stream's batches ahead on one thread (or on the calling thread), in order; errors are rethrown in
// their turn.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <accelerate/batch.hpp>

namespace accelerate::detail {

class StreamReader {
 public:
  /// `produce` returns the next batch, or nullopt at the end. With `background`, a thread keeps up to `depth`
  /// batches ready.
  StreamReader(std::function<std::optional<Batch>()> produce, bool background, int depth);
  ~StreamReader();  // stops and joins the thread (after the batch it is reading)
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  std::optional<Batch> next();

 private:
  void run();
  std::function<std::optional<Batch>()> produce_;
  int depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace accelerate::detail
