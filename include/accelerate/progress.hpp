// A progress bar for training loops (tqdm's look): rate, elapsed and remaining time, postfix values. In a
// terminal it redraws one line; otherwise (logs, CI) it prints a plain line every few seconds and at the end.
// Shown by the main process only unless asked otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

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

}  // namespace accelerate
