// The MLflow tracker over MLflow's public REST API (https://mlflow.org/docs/latest/api_reference/rest-api.html),
// HTTP through libcurl: the experiment (found or created by name), a run, params from the config, metrics with
// steps through runs/log-batch, and the run's end status. A writer thread sends; a server that goes away never
// stops or slows training: requests are buffered and retried, and the first failure is a warning, once.
#include <accelerate/tracking.hpp>

#include <accelerate/error.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "detail/background_sender.hpp"
#include "detail/error_text.hpp"
#include "detail/tracking_io.hpp"

namespace accelerate {
namespace {
using detail::concat;
using nlohmann::json;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One HTTP exchange; nullopt (with `error` set) when the server cannot be reached or answers an error.
std::optional<json> request(const std::string& url, const std::string& method, const json& body, std::string& error,
                            long timeout_s) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return error = "libcurl could not start", std::nullopt;
  std::string answer;
  const auto payload = body.dump();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer);
  const CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(headers);
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) return error = curl_easy_strerror(rc), std::nullopt;
  auto parsed = json::parse(answer, nullptr, false);
  if (status != 200) {
    error = concat("HTTP ", status, ": ", answer.substr(0, 300));
    return parsed.is_object() ? std::optional<json>(json{{"http_status", status}, {"body", parsed}}) : std::nullopt;
  }
  return parsed.is_discarded() ? json::object() : parsed;
}

/// MLflow params are text; metrics numbers (text values are logged as params instead, as MLflow has no text metric).
std::string param_text(const LogValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>)
          return x;
        else if constexpr (std::is_same_v<T, double>)
          return detail::number_text(x);
        else
          return std::to_string(x);
      },
      v);
}

class MlflowTracker final : public Tracker {
 public:
  MlflowTracker(const std::string& uri, const std::string& experiment, const std::string& run_name)
      : api_(uri + "/api/2.0/mlflow/") {
    std::string error;
    auto found = request(api_ + "experiments/get-by-name?experiment_name=" + escape(experiment), "GET", json::object(),
                         error, 30);
    ACCELERATE_CHECK(found, ConfigError, "log_with mlflow: cannot reach the MLflow server at ", uri, " (", error,
                     "). Start one (mlflow server --host 127.0.0.1 --port 5000) and set MLFLOW_TRACKING_URI to its "
                     "address.");
    std::string experiment_id;
    if (found->contains("experiment")) {
      experiment_id = (*found)["experiment"].value("experiment_id", "");
    } else {
      auto made = request(api_ + "experiments/create", "POST", json{{"name", experiment}}, error, 30);
      ACCELERATE_CHECK(made && made->contains("experiment_id"), ConfigError,
                       "log_with mlflow: cannot create the "
                       "experiment '",
                       experiment, "' at ", uri, ": ", error);
      experiment_id = (*made)["experiment_id"].get<std::string>();
    }
    json create{{"experiment_id", experiment_id}, {"start_time", now_ms()}};
    if (!run_name.empty()) create["run_name"] = run_name;
    auto run = request(api_ + "runs/create", "POST", create, error, 30);
    ACCELERATE_CHECK(run && run->contains("run"), ConfigError, "log_with mlflow: cannot create a run in experiment '",
                     experiment, "' at ", uri, ": ", error);
    run_id_ = (*run)["run"]["info"]["run_id"].get<std::string>();
    sender_ =
        std::make_unique<detail::BackgroundSender<Request>>(100000, [this](const Request& r) { return deliver(r); });
  }
  ~MlflowTracker() override { end(finished_ ? "FINISHED" : "FAILED"); }

  std::string name() const override { return "mlflow"; }
  void store_init_configuration(const LogValues& config) override {
    json params = json::array();
    for (const auto& [k, v] : config) params.push_back({{"key", k}, {"value", param_text(v).substr(0, 6000)}});
    enqueue({"runs/log-batch", json{{"run_id", run_id_}, {"params", params}}});
  }
  void log(const LogValues& values, int64_t step) override {
    json metrics = json::array();
    const auto time = now_ms();
    for (const auto& [k, v] : values) {
      if (std::holds_alternative<std::string>(v)) {  // MLflow metrics are numbers (HF's tracker skips text too)
        warn_once(concat("'", k, "' is text; MLflow metrics are numbers, so text values are not logged"));
        continue;
      }
      const double x = std::holds_alternative<double>(v) ? std::get<double>(v) : double(std::get<int64_t>(v));
      metrics.push_back({{"key", k}, {"value", x}, {"timestamp", time}, {"step", step}});
    }
    if (!metrics.empty()) enqueue({"runs/log-batch", json{{"run_id", run_id_}, {"metrics", metrics}}});
  }
  /// The run's status FINISHED (end_training); a run destroyed without it (an exception) ends FAILED.
  void finish() override {
    finished_ = true;
    end("FINISHED");
  }

 private:
  struct Request {
    std::string path;
    json body;
  };

  static std::string escape(const std::string& s) {
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    char* e = curl_easy_escape(curl.get(), s.c_str(), static_cast<int>(s.size()));
    std::string out = e ? e : s;
    curl_free(e);
    return out;
  }

  void enqueue(Request r) {
    if (ended_) return;
    if (!sender_->push(std::move(r))) warn_once("more than 100000 requests waiting for the server; dropping");
  }

  /// One request, on the sender's thread, in order: a failure is kept and retried (until it goes through, or,
  /// once the run is ending, until end's deadline); the server's refusal of the request itself is not retried.
  detail::SendOutcome deliver(const Request& r) {
    std::string error;
    const auto answer = request(api_ + r.path, "POST", r.body, error, 10);
    if (answer && !answer->contains("http_status")) return detail::SendOutcome::Sent;
    if (answer && (*answer)["http_status"].get<long>() < 500) {  // refused as such: retrying will not help
      warn_once(concat("the server refused a request (", error, ")"));
      return detail::SendOutcome::Dropped;
    }
    warn_once(concat("the server does not answer (", error, "); logging is kept and retried"));
    return detail::SendOutcome::Retry;
  }

  /// Flushes what is queued (up to 10 s), then sets the run's status.
  void end(const char* status) {
    if (ended_) return;
    ended_ = true;
    const auto undelivered = sender_->close(std::chrono::seconds(10));
    std::string error;
    const bool updated = request(api_ + "runs/update", "POST",
                                 json{{"run_id", run_id_}, {"status", status}, {"end_time", now_ms()}}, error, 10)
                             .has_value();
    if (undelivered > 0 || !updated) {  // said even after the first warning: what was lost
      std::cerr << "accelerate: warning: mlflow tracker: " << undelivered << " logging request(s) were never "
                << "delivered"
                << (updated ? "" : concat(" and the run's status could not be set to ", status, " (", error, ")"))
                << "." << std::endl;
    }
  }

  void warn_once(const std::string& what) {
    if (warned_.exchange(true)) return;
    std::cerr << "accelerate: warning: mlflow tracker: " << what << "; training goes on." << std::endl;
  }

  std::string api_, run_id_;
  bool finished_ = false, ended_ = false;
  std::atomic<bool> warned_{false};
  std::unique_ptr<detail::BackgroundSender<Request>> sender_;  // last: its thread uses the members above
};

}  // namespace

std::unique_ptr<Tracker> make_mlflow_tracker(const std::string& experiment_name,
                                             const std::map<std::string, std::string>& init_kwargs) {
  const char* uri = std::getenv("MLFLOW_TRACKING_URI");
  ACCELERATE_CHECK(uri && *uri, ConfigError,
                   "log_with mlflow: set MLFLOW_TRACKING_URI to the MLflow server's address (http://host:5000); "
                   "this tracker speaks MLflow's REST API, so a local mlruns folder is not supported.");
  std::string base = uri;
  while (!base.empty() && base.back() == '/') base.pop_back();
  ACCELERATE_CHECK(base.rfind("http://", 0) == 0 || base.rfind("https://", 0) == 0, ConfigError,
                   "log_with mlflow: MLFLOW_TRACKING_URI is '", uri,
                   "'; it must be an http:// or https:// address of "
                   "an MLflow server.");
  const char* experiment = std::getenv("MLFLOW_EXPERIMENT_NAME");
  const auto run_name = init_kwargs.find("run_name");
  return std::make_unique<MlflowTracker>(base, experiment && *experiment ? experiment : experiment_name,
                                         run_name == init_kwargs.end() ? std::string() : run_name->second);
}

}  // namespace accelerate
