// get_logger: HF's MultiProcessAdapter. Messages go to stderr as "<time> - <LEVEL> - <name> - [RANK i] <msg>",
// from the main process only unless asked otherwise, or from every process in rank order (in_order).
// The level comes from ACCELERATE_LOG_LEVEL (debug, info, warning, error; default info).
#pragma once

#include <optional>
#include <string>

#include <accelerate/error.hpp>
#include <accelerate/process_state.hpp>
#include <accelerate/settings.hpp>  // LogLevel

namespace accelerate {

struct LogOptions {
  bool main_process_only = true;
  /// Every process logs, one after the other by rank (a barrier per rank: for rare messages only).
  bool in_order = false;
};

class Logger {
 public:
  /// `level` unset: ACCELERATE_LOG_LEVEL as `state` read it, else info.
  Logger(const ProcessState& state, std::string name, std::optional<LogLevel> level = std::nullopt);
  void log(LogLevel level, const std::string& message, LogOptions options = {}) const;
  template <class... Args>
  void debug(const Args&... args) const {
    log(LogLevel::Debug, detail::concat(args...));
  }
  template <class... Args>
  void info(const Args&... args) const {
    log(LogLevel::Info, detail::concat(args...));
  }
  template <class... Args>
  void warning(const Args&... args) const {
    log(LogLevel::Warning, detail::concat(args...));
  }
  template <class... Args>
  void error(const Args&... args) const {
    log(LogLevel::Error, detail::concat(args...));
  }
  LogLevel level() const { return level_; }

 private:
  std::string name_;
  const ProcessState& state_;
  LogLevel level_;
};

/// HF's get_logger(name, log_level): the state comes first, as in every function that takes one.
inline Logger get_logger(const ProcessState& state, const std::string& name,
                         std::optional<LogLevel> level = std::nullopt) {
  return Logger(state, name, level);
}

}  // namespace accelerate
