// A progress bar for training loops (tqdm's look): rate, elapsed and remaining time, postfix values. In a
// terminal it redraws one line; otherwise (logs, CI) it prints a plain line every few seconds and at the end.
// Shown by the main process only unless asked otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <accelerate/data_loader.hpp>
#include <accelerate/process_state.hpp>
#include <accelerate/tracking.hpp>

namespace accelerate {

struct ProgressOptions {
  std::string description;
  bool main_process_only = true;
  std::FILE* stream = stderr;
  double redraw_interval_s = 0.1;  ///< in a terminal
  double plain_interval_s = 10.0;  ///< when the stream is not a terminal
  /// Unset: whether `stream` is a terminal.
  std::optional<bool> terminal;
};

class ProgressBar {
 public:
  ProgressBar(const ProcessState& state, int64_t total, ProgressOptions options = {});
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(int64_t n = 1);
  /// Values shown after the counts ("loss=0.412"); replaced on each call.
  void set_postfix(const LogValues& values);
  /// Draws the final state and ends the line; update() after close() does nothing.
  void close();
  /// The line as it would be drawn now (tests, custom output).
  std::string render() const;

 private:
  void draw(bool force);
  bool enabled_;
  int64_t total_, done_ = 0;
  ProgressOptions options_;
  bool terminal_;
  std::string postfix_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool closed_ = false;
};

/// tqdm's `for batch in tqdm(loader)`: `for (auto& batch : progress_bar(loader))` iterates a prepared loader and
/// advances a bar of loader.size() steps, closed when the loop ends. Throws StateError for a loader that was not
/// prepared (the bar needs its process state; use ProgressBar(state, total) directly otherwise). tqdm's
/// `bar.set_postfix(loss=...)` inside the loop: `auto bar = progress_bar(loader); for (auto& batch : bar) { ...;
/// bar.set_postfix({{"loss", loss.item<double>()}}); }`.
class ProgressRange {
 public:
  ProgressRange(DataLoader& loader, ProgressOptions options);
  class Iterator {
   public:
    Batch& operator*() { return *inner_; }
    Iterator& operator++();
    bool operator!=(const Iterator& other) const { return inner_ != other.inner_; }

   private:
    friend class ProgressRange;
    Iterator(DataLoader::Iterator inner, ProgressBar* bar, DataLoader* loader)
        : inner_(std::move(inner)), bar_(bar), loader_(loader) {}
    DataLoader::Iterator inner_;
    ProgressBar* bar_;
    DataLoader* loader_;
  };
  Iterator begin();
  Iterator end() { return Iterator(loader_.end(), nullptr, &loader_); }
  /// Values shown after the counts from now on (ProgressBar::set_postfix); before the loop, from its start.
  void set_postfix(const LogValues& values);
  /// The bar of the running loop (nullptr before it starts).
  ProgressBar* bar() { return bar_.get(); }

 private:
  DataLoader& loader_;
  ProgressOptions options_;
  std::unique_ptr<ProgressBar> bar_;
  LogValues postfix_;  // shown from the start of the next loop
};

inline ProgressRange progress_bar(DataLoader& loader, ProgressOptions options = {}) {
  return ProgressRange(loader, std::move(options));
}

}  // namespace accelerate
