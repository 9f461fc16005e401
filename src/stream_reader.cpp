#include "detail/stream_reader.hpp"

namespace accelerate::detail {

StreamReader::StreamReader(std::function<std::optional<Batch>()> produce, bool background, int depth)
    : produce_(std::move(produce)), depth_(depth) {
  if (background) thread_ = std::thread([this] { run(); });
}

StreamReader::~StreamReader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<Batch> StreamReader::next() {
  if (!thread_.joinable()) return produce_();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || done_ || error_; });
  if (ready_.empty()) {
    if (error_) std::rethrow_exception(error_);
    return std::nullopt;
  }
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  changed_.notify_all();
  return b;
}

void StreamReader::run() {
  while (true) {
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = produce_();
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (error || !batch) {
      error_ = error;
      done_ = true;
      changed_.notify_all();
      return;
    }
    ready_.push_back(std::move(*batch));
    changed_.notify_all();
    changed_.wait(lock, [&] { return stop_ || static_cast<int>(ready_.size()) < depth_; });
    if (stop_) return;
  }
}

}  // namespace accelerate::detail
