// Internal: the queue and thread through which the W&B and MLflow trackers send, so that a slow or dead helper
// process or server never blocks or stops the training loop.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace accelerate::detail {

/// What a send did with the item at the front of the queue.
enum class SendOutcome {
  Sent,     ///< delivered: the next one
  Dropped,  ///< refused for good (a bad request): dropped, the next one
  Retry,    ///< not delivered (no answer): kept and sent again after a pause (0.25 s doubling to 30 s)
  Stop,     ///< the other end is gone: everything queued is dropped and nothing more is taken
};

/// Items of type `Item` sent in order by one thread through `send`. push never blocks; close() flushes what is
/// queued (bounded by a deadline) and joins the thread. Not copyable or movable (the thread holds `this`).
template <class Item>
class BackgroundSender {
 public:
  using Send = std::function<SendOutcome(const Item&)>;

  /// `capacity`: items kept at most; push refuses more (the caller decides whether to warn).
  BackgroundSender(std::size_t capacity, Send send) : capacity_(capacity), send_(std::move(send)) {
    thread_ = std::thread([this] { run(); });
  }
  BackgroundSender(const BackgroundSender&) = delete;
  BackgroundSender& operator=(const BackgroundSender&) = delete;
  ~BackgroundSender() { close(std::chrono::seconds(0)); }

  /// Queues `item`; false when the queue is full, closed, or the other end is gone.
  bool push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closing_ || stopped_ || queue_.size() >= capacity_) return false;
      queue_.push_back(std::move(item));
    }
    wake_.notify_one();
    return true;
  }

  /// Takes no more items, keeps sending what is queued for at most `flush_for` (retry pauses shortened to 0.5 s),
  /// joins the thread. Returns how many items were never delivered. Idempotent.
  std::size_t close(std::chrono::milliseconds flush_for) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!closing_) deadline_ = Clock::now() + flush_for;
      closing_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    auto pause = std::chrono::milliseconds(250);
    while (true) {
      wake_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty() || (closing_ && Clock::now() > deadline_)) return;
      // Only this thread pops, and a deque's push_back keeps references: the front stays valid while unlocked.
      const Item& front = queue_.front();
      lock.unlock();
      const auto outcome = send_(front);
      lock.lock();
      if (outcome == SendOutcome::Stop) {
        stopped_ = true;
        queue_.clear();
        return;
      }
      if (outcome != SendOutcome::Retry) {
        queue_.pop_front();
        pause = std::chrono::milliseconds(250);
        continue;
      }
      // A pause that close() cuts short; while closing, short pauses until the deadline.
      const bool was_closing = closing_;
      wake_.wait_for(lock, pause, [&] { return closing_ != was_closing; });
      pause = closing_ ? std::chrono::milliseconds(500) : std::min(pause * 2, std::chrono::milliseconds(30000));
    }
  }

  const std::size_t capacity_;
  const Send send_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool closing_ = false, stopped_ = false;
  Clock::time_point deadline_{};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace accelerate::detail
