// Trackers: JSONL/CSV contents, non-finite values, bad names and folders, a user tracker.
#include <accelerate/accelerate.hpp>

#include "detail/background_sender.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <limits>
#include <thread>
#include <vector>

using namespace accelerate;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("accelerate_track_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

AcceleratorOptions options_in(const fs::path& dir, std::vector<std::string> log_with) {
  AcceleratorOptions o;
  o.cpu = true;
  o.project.project_dir = dir.string();
  o.log_with = std::move(log_with);
  return o;
}

struct Recorder : Tracker {
  std::vector<std::pair<int64_t, LogValues>>* calls;
  explicit Recorder(std::vector<std::pair<int64_t, LogValues>>* c) : calls(c) {}
  std::string name() const override { return "recorder"; }
  void store_init_configuration(const LogValues& config) override { calls->push_back({-1, config}); }
  void log(const LogValues& values, int64_t step) override { calls->push_back({step, values}); }
};

}  // namespace

TEST(Trackers, JsonlAndCsvKeepNonFiniteValuesAsSuch) {
  const auto dir = temp_dir("nonfinite");
  {
    Accelerator acc(options_in(dir, {"jsonl", "csv"}));
    acc.init_trackers("run", {{"lr", 0.1}, {"name", std::string("a,b")}});
    acc.log({{"loss", std::numeric_limits<double>::quiet_NaN()},
             {"grad", std::numeric_limits<double>::infinity()},
             {"step_count", int64_t{3}}},
            7);
    acc.end_training();
  }
  const auto jsonl = read(dir / "run" / "metrics.jsonl");
  EXPECT_NE(jsonl.find(R"("_step":7)"), std::string::npos) << jsonl;
  EXPECT_NE(jsonl.find(R"("loss":"nan")"), std::string::npos) << jsonl;
  EXPECT_NE(jsonl.find(R"("grad":"inf")"), std::string::npos) << jsonl;
  const auto csv = read(dir / "run" / "metrics.csv");
  EXPECT_EQ(csv.rfind("step,wall_time,name,value\n", 0), 0u) << csv;
  EXPECT_NE(csv.find(",loss,nan\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",step_count,3\n"), std::string::npos) << csv;
  EXPECT_NE(read(dir / "run" / "hparams.csv").find("name,\"a,b\"\n"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Trackers, BadNamesAndFoldersAreClearErrors) {
  const auto dir = temp_dir("bad");
  {
    Accelerator acc(options_in(dir, {"comet_ml"}));
    try {
      acc.init_trackers("run");
      FAIL() << "an unknown tracker was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("unsupported tracker 'comet_ml'"), std::string::npos) << e.what();
    }
  }
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "not a folder";
  auto options = options_in(dir, {"tensorboard"});
  options.project.logging_dir = (dir / "file").string();  // a project_dir like this fails at construction already
  Accelerator acc(options);
  try {
    acc.init_trackers("run");
    FAIL() << "a logging folder under a file was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the logging folder"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find((dir / "file" / "run").string()), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Trackers, UserTrackerGetsConfigAndSteps) {
  std::vector<std::pair<int64_t, LogValues>> calls;
  Accelerator acc(options_in(temp_dir("user"), {}));
  acc.add_tracker(std::make_unique<Recorder>(&calls));
  acc.init_trackers("run", {{"lr", 0.5}});
  acc.log({{"loss", 1.0}});  // no step: the number of earlier log calls
  acc.log({{"loss", 2.0}}, 10);
  acc.log({{"loss", 3.0}});
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].first, -1);
  EXPECT_EQ(std::get<double>(calls[0].second.at("lr")), 0.5);
  EXPECT_EQ(calls[1].first, 0);
  EXPECT_EQ(calls[2].first, 10);
  EXPECT_EQ(calls[3].first, 2);
  EXPECT_NE(acc.get_tracker("recorder"), nullptr);
  EXPECT_EQ(acc.get_tracker("tensorboard"), nullptr);
}

// The W&B and MLflow trackers' sender: in order, a refused item skipped, a failed one retried, a gone receiver
// ending it, and close() bounded by its deadline.
TEST(BackgroundSender, SendsInOrderSkipsRefusedAndRetriesFailed) {
  std::vector<int> seen;
  int failures_left = 2;
  accelerate::detail::BackgroundSender<int> sender(100, [&](const int& x) {
    seen.push_back(x);
    if (x == 3) return accelerate::detail::SendOutcome::Dropped;
    if (x == 4 && failures_left-- > 0) return accelerate::detail::SendOutcome::Retry;
    return accelerate::detail::SendOutcome::Sent;
  });
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(sender.push(i));
  EXPECT_EQ(sender.close(std::chrono::seconds(30)), 0u);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4, 4, 4, 5}));
  EXPECT_FALSE(sender.push(6));  // closed
}

TEST(BackgroundSender, StopDropsTheRestAndCloseKeepsItsDeadline) {
  std::atomic<int> sent{0};
  accelerate::detail::BackgroundSender<int> stopping(100, [&](const int&) {
    ++sent;
    return accelerate::detail::SendOutcome::Stop;
  });
  ASSERT_TRUE(stopping.push(1));
  for (int i = 0; i < 200 && sent == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(stopping.push(2));  // the receiver is gone
  EXPECT_EQ(stopping.close(std::chrono::seconds(30)), 0u);
  EXPECT_EQ(sent, 1);

  accelerate::detail::BackgroundSender<int> failing(2,
                                                    [](const int&) { return accelerate::detail::SendOutcome::Retry; });
  ASSERT_TRUE(failing.push(1));
  ASSERT_TRUE(failing.push(2));
  EXPECT_FALSE(failing.push(3));  // full
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(failing.close(std::chrono::milliseconds(300)), 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}
