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

/// HF's init_trackers(init_kwargs=...): per tracker name, the keyword arguments of its run ({"wandb", {{"entity",
/// "me"}, {"name", "run-1"}, {"tags", R"(["baseline", "t4"])"}, {"dir", "runs"}}}). Each value is passed as the
/// JSON it spells (a list, true, 3), else as text.
using TrackerInitKwargs = std::map<std::string, std::map<std::string, std::string>>;

/// Weights & Biases through W&B's own SDK (PyPI `wandb`), which runs in a helper Python process (ACCELERATE_CPP_PYTHON,
/// else python3) and gets wandb.init(project, config, **init_kwargs): WANDB_PROJECT, when set, names the project;
/// WANDB_MODE, WANDB_DIR, WANDB_API_KEY and W&B's other variables apply as in Python. ConfigError when Python or
/// wandb is missing or wandb.init fails (naming the install command). Logging never blocks training: a helper that
/// dies or falls behind is a warning, once, and the run goes on without it. finish() waits up to 60 s for W&B.
std::unique_ptr<Tracker> make_wandb_tracker(const std::string& project_name, const LogValues& config,
                                            const std::map<std::string, std::string>& init_kwargs = {});

/// MLflow over its REST API to the server at MLFLOW_TRACKING_URI (http[s]://host:port; ConfigError when unset or
/// unreachable): the experiment `experiment_name` (MLFLOW_EXPERIMENT_NAME, when set, instead), found or created; a
/// run (init_kwargs "run_name"); the config as params; numbers as metrics with steps (text is skipped, as HF's
/// tracker does); status FINISHED at finish(), FAILED when destroyed without it. A server that goes away never
/// stops training: requests are kept and retried, one warning; finish() waits up to 10 s for them.
std::unique_ptr<Tracker> make_mlflow_tracker(const std::string& experiment_name,
                                             const std::map<std::string, std::string>& init_kwargs = {});

/// The trackers named in `log_with` ("tensorboard", "jsonl", "csv", "all"), writing under run_dir ("wandb" and
/// "mlflow" are accepted and left to Accelerator::init_trackers, which has their project and init_kwargs). An unknown
/// name or a folder that cannot be written is a ConfigError that says which and how to fix it.
std::vector<std::unique_ptr<Tracker>> make_trackers(const std::vector<std::string>& log_with,
                                                    const std::string& run_dir);

}  // namespace accelerate
