#include <accelerate/logging.hpp>

#include <accelerate/collectives.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <iostream>

namespace accelerate {

Logger::Logger(const ProcessState& state, std::string name, std::optional<LogLevel> level)
    : name_(std::move(name)), state_(state) {
  level_ = level.value_or(state.settings().log_level.value_or(LogLevel::Info));
}

void Logger::log(LogLevel level, const std::string& message, LogOptions options) const {
  auto emit = [&] {
    if (level < level_) return;
    static const char* names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    ::localtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    // One write per message, so lines of different processes do not interleave mid-line.
    std::cerr << detail::concat(stamp, " - ", names[static_cast<int>(level) / 10 - 1], " - ", name_, " - [RANK ",
                                state_.process_index(), "] ", message, "\n")
              << std::flush;
  };
  if (options.in_order) {
    for (int rank = 0; rank < state_.num_processes(); ++rank) {
      if (rank == state_.process_index()) emit();
      wait_for_everyone(state_);
    }
  } else if (!options.main_process_only || state_.is_main_process()) {
    emit();
  }
}

}  // namespace accelerate
