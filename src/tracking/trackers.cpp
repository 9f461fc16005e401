// JSON Lines and CSV trackers, and the factory behind AcceleratorOptions::log_with.
#include <accelerate/tracking.hpp>

#include <accelerate/error.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "detail/tracking_io.hpp"

namespace accelerate {
namespace detail {

void make_run_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ACCELERATE_CHECK(!ec, ConfigError, "trackers: cannot create the logging folder ", dir, " (", ec.message(),
                   "). Set ProjectConfiguration::logging_dir (or project_dir) to a writable folder.");
}

FILE* open_for_append(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "a");
  ACCELERATE_CHECK(f != nullptr, ConfigError, "trackers: cannot write ", path,
                   ". Set ProjectConfiguration::logging_dir (or project_dir) to a writable folder.");
  return f;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

nlohmann::json log_value_json(const LogValue& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>) {
          if (!std::isfinite(x)) return number_text(x);  // JSON has no NaN/inf: kept as text
        }
        return x;
      },
      v);
}

}  // namespace detail

namespace {

using File = std::unique_ptr<FILE, int (*)(FILE*)>;

class JsonlTracker final : public Tracker {
 public:
  explicit JsonlTracker(const std::string& dir) : file_(nullptr, std::fclose) {
    detail::make_run_dir(dir);
    file_.reset(detail::open_for_append(dir + "/metrics.jsonl"));
  }
  std::string name() const override { return "jsonl"; }
  void store_init_configuration(const LogValues& config) override {
    nlohmann::json c = nlohmann::json::object();
    for (const auto& [k, v] : config) c[k] = detail::log_value_json(v);
    write(nlohmann::json{{"_config", c}, {"_time", detail::wall_time()}});
  }
  void log(const LogValues& values, int64_t step) override {
    nlohmann::json line{{"_step", step}, {"_time", detail::wall_time()}};
    for (const auto& [k, v] : values) line[k] = detail::log_value_json(v);
    write(line);
  }
  void finish() override { file_.reset(); }

 private:
  void write(const nlohmann::json& j) {
    if (!file_) return;
    const auto text = j.dump() + "\n";
    std::fwrite(text.data(), 1, text.size(), file_.get());
    std::fflush(file_.get());
  }
  File file_;
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_value(const LogValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>)
          return detail::number_text(x);
        else if constexpr (std::is_same_v<T, int64_t>)
          return std::to_string(x);
        else
          return csv_field(x);
      },
      v);
}

class CsvTracker final : public Tracker {
 public:
  explicit CsvTracker(const std::string& dir) : dir_(dir), metrics_(nullptr, std::fclose) {
    detail::make_run_dir(dir);
    const bool fresh = !std::filesystem::exists(dir + "/metrics.csv");
    metrics_.reset(detail::open_for_append(dir + "/metrics.csv"));
    if (fresh) write(metrics_.get(), "step,wall_time,name,value\n");
  }
  std::string name() const override { return "csv"; }
  void store_init_configuration(const LogValues& config) override {
    File f(detail::open_for_append(dir_ + "/hparams.csv"), std::fclose);
    std::string text = "name,value\n";
    for (const auto& [k, v] : config) text += csv_field(k) + "," + csv_value(v) + "\n";
    write(f.get(), text);
  }
  void log(const LogValues& values, int64_t step) override {
    if (!metrics_) return;
    const auto time = detail::number_text(detail::wall_time());
    std::string text;
    for (const auto& [k, v] : values)
      text += std::to_string(step) + "," + time + "," + csv_field(k) + "," + csv_value(v) + "\n";
    write(metrics_.get(), text);
  }
  void finish() override { metrics_.reset(); }

 private:
  static void write(FILE* f, const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), f);
    std::fflush(f);
  }
  std::string dir_;
  File metrics_;
};

}  // namespace

std::unique_ptr<Tracker> make_jsonl_tracker(const std::string& run_dir) {
  return std::make_unique<JsonlTracker>(run_dir);
}
std::unique_ptr<Tracker> make_csv_tracker(const std::string& run_dir) { return std::make_unique<CsvTracker>(run_dir); }

std::vector<std::unique_ptr<Tracker>> make_trackers(const std::vector<std::string>& log_with,
                                                    const std::string& run_dir) {
  using Factory = std::unique_ptr<Tracker> (*)(const std::string&);
  static const std::vector<std::pair<std::string, Factory>> known = {
      {"tensorboard", make_tensorboard_tracker}, {"jsonl", make_jsonl_tracker}, {"csv", make_csv_tracker}};
  for (const auto& w : log_with) {
    bool ok = w == "all" || w == "wandb" || w == "mlflow";  // they need the project: init_trackers makes them
    for (const auto& k : known) ok = ok || k.first == w;
    ACCELERATE_CHECK(
        ok, ConfigError, "log_with: unsupported tracker '", w,
        "'. Choose among tensorboard, jsonl, csv, wandb, mlflow, all (the three file trackers), or add your own "
        "with "
        "Accelerator::add_tracker.");
  }
  std::vector<std::unique_ptr<Tracker>> out;
  for (const auto& [name, factory] : known) {
    bool wanted = false;
    for (const auto& w : log_with) wanted = wanted || w == name || w == "all";
    if (wanted) out.push_back(factory(run_dir));
  }
  return out;
}

}  // namespace accelerate
