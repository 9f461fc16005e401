#include <accelerate/progress.hpp>

#include <cmath>
#include <unistd.h>

#include <accelerate/error.hpp>

namespace accelerate {
namespace {

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(text, sizeof text, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return text;
}

std::string value_text(const LogValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>) {
          char text[32];
          std::snprintf(text, sizeof text, "%.4g", x);
          return text;
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(x);
        } else {
          return x;
        }
      },
      v);
}

}  // namespace

ProgressBar::ProgressBar(const ProcessState& state, int64_t total, ProgressOptions options)
    : enabled_(!options.main_process_only || state.is_main_process()),
      total_(total),
      options_(std::move(options)),
      terminal_(options_.terminal.value_or(::isatty(::fileno(options_.stream)) == 1)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { close(); }

std::string ProgressBar::render() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string line = options_.description.empty() ? "" : options_.description + ": ";
  if (total_ > 0) {
    const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    constexpr int kWidth = 20;
    const int filled = static_cast<int>(fraction * kWidth);
    line += detail::concat(static_cast<int>(fraction * 100), "%|", std::string(filled, '#'),
                           std::string(kWidth - filled, ' '), "| ", done_, "/", total_, " [", clock_text(elapsed), "<",
                           clock_text(rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN));
  } else {
    line += detail::concat(done_, " [", clock_text(elapsed));
  }
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, ", %.2fit/s", rate);
  line += rate_text;
  if (!postfix_.empty()) line += ", " + postfix_;
  return line + "]";
}

void ProgressBar::draw(bool force) {
  if (!enabled_ || closed_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < (terminal_ ? options_.redraw_interval_s : options_.plain_interval_s)) return;
  last_draw_ = now;
  const auto line = render();
  // In a terminal: back to the line start and clear it; otherwise one plain line per draw.
  std::fprintf(options_.stream, terminal_ ? "\r\033[K%s" : "%s\n", line.c_str());
  std::fflush(options_.stream);
}

void ProgressBar::update(int64_t n) {
  done_ += n;
  draw(false);
}

void ProgressBar::set_postfix(const LogValues& values) {
  postfix_.clear();
  for (const auto& [k, v] : values) postfix_ += (postfix_.empty() ? "" : ", ") + k + "=" + value_text(v);
}

void ProgressBar::close() {
  if (closed_) return;
  draw(true);
  if (enabled_ && terminal_) {
    std::fputc('\n', options_.stream);
    std::fflush(options_.stream);
  }
  closed_ = true;
}

ProgressRange::ProgressRange(DataLoader& loader, ProgressOptions options)
    : loader_(loader), options_(std::move(options)) {
  ACCELERATE_CHECK(loader.state() != nullptr, StateError,
                   "progress_bar(loader): prepare the loader first (acc.prepare(loader)); the bar needs its process "
                   "state. For an unprepared loader use ProgressBar(state, total).");
}

void ProgressRange::set_postfix(const LogValues& values) {
  postfix_ = values;
  if (bar_) bar_->set_postfix(values);
}

ProgressRange::Iterator ProgressRange::begin() {
  bar_ = std::make_unique<ProgressBar>(*loader_.state(), loader_.size(), options_);
  if (!postfix_.empty()) bar_->set_postfix(postfix_);
  auto inner = loader_.begin();
  if (!(inner != loader_.end())) bar_->close();
  return Iterator(std::move(inner), bar_.get(), &loader_);
}

ProgressRange::Iterator& ProgressRange::Iterator::operator++() {
  ++inner_;
  if (bar_) {
    bar_->update();
    if (!(inner_ != loader_->end())) bar_->close();
  }
  return *this;
}

}  // namespace accelerate
