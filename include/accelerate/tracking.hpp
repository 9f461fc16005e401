// Experiment trackers (HF's GeneralTracker): TensorBoard event files, JSON Lines and CSV, written by the main
// process only; a small interface for your own.
//
//   o.log_with = {"tensorboard", "jsonl"};        // or {"all"}
//   acc.init_trackers("mnist", {{"lr", 1e-3}, {"batch_size", int64_t{64}}});
//   acc.log({{"train_loss", loss}, {"lr", lr}}, step);
//   acc.end_training();                           // flushes and closes every tracker
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace accelerate {

/// A logged value: a number, an integer or a text. Non-finite numbers are logged as such (nan, inf). Any integer
/// type (int, size_t, ...) is an integer and any floating type a number, so `{{"epoch", 3}, {"lr", 1e-3f}}` works as
/// in Python.
struct LogValue : std::variant<double, int64_t, std::string> {
  using Base = std::variant<double, int64_t, std::string>;
  template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  LogValue(T value) : Base(static_cast<int64_t>(value)) {}
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  LogValue(T value) : Base(static_cast<double>(value)) {}
  LogValue(std::string value) : Base(std::move(value)) {}
  LogValue(const char* value) : Base(std::string(value)) {}
};
using LogValues = std::map<std::string, LogValue>;

class Tracker {
 public:
  virtual ~Tracker() = default;
  /// "tensorboard", "jsonl", "csv", or yours: what Accelerator::get_tracker looks for.
  virtual std::string name() const = 0;
  /// The run's hyper-parameters, once, right after the tracker is made.
  virtual void store_init_configuration(const LogValues& config) = 0;
  virtual void log(const LogValues& values, int64_t step) = 0;
  /// Flushes and closes (end_training).
  virtual void finish() {}
};

/// `<logging_dir>/<project_name>/events.out.tfevents.<time>.<host>.<pid>`: scalars (numbers), text (strings),
/// and the hyper-parameters for TensorBoard's HParams view.
std::unique_ptr<Tracker> make_tensorboard_tracker(const std::string& run_dir);
/// `<run_dir>/metrics.jsonl`: one object per log call ({"_step", "_time", values...}); the config first.
std::unique_ptr<Tracker> make_jsonl_tracker(const std::string& run_dir);
/// `<run_dir>/metrics.csv` (step,wall_time,name,value: one row per value, so columns never change) and
/// `<run_dir>/hparams.csv` (name,value).
std::unique_ptr<Tracker> make_csv_tracker(const std::string& run_dir);

/// The trackers named in `log_with` ("tensorboard", "jsonl", "csv", "all"), writing under run_dir. An unknown
/// name or a folder that cannot be written is a ConfigError that says which and how to fix it.
std::vector<std::unique_ptr<Tracker>> make_trackers(const std::vector<std::string>& log_with,
                                                    const std::string& run_dir);

}  // namespace accelerate
