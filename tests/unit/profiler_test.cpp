// The profiler: the schedule's steps (torch.profiler.schedule's), one trace per cycle named after the process, the
// library's named ranges and LibTorch's operators in it, and bad kwargs refused.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

#include "temp_dir.hpp"

using namespace accelerate;
using accelerate::testing::TempDir;

TEST(Profiler, TheScheduleIsTorchProfilers) {
  // skip 1, then cycles of wait 1, warm-up 1, active 2, twice.
  const ProfileSchedule s{.wait = 1, .warmup = 1, .active = 2, .repeat = 2, .skip_first = 1};
  using A = ProfileAction;
  const std::vector<A> expected{A::None,   A::None,   A::Warmup,        A::Record, A::RecordAndSave, A::None,
                                A::Warmup, A::Record, A::RecordAndSave, A::None,   A::None};
  for (size_t step = 0; step < expected.size(); ++step) EXPECT_EQ(profile_action(s, step), expected[step]) << step;
  // repeat 0: cycles until the end.
  EXPECT_EQ(profile_action({.active = 1}, 1000), A::RecordAndSave);
}

namespace {
std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST(Profiler, EachCycleIsOneTraceWithTheLibrarysRanges) {
  TempDir tmp;
  AcceleratorOptions o;
  o.cpu = true;
  Accelerator acc(o);
  torch::nn::Linear model(8, 4);
  torch::optim::SGD sgd(model->parameters(), 0.1);
  auto [net, opt] = acc.prepare(model, sgd);
  {
    auto prof = acc.profile({.schedule_option = ProfileSchedule{.wait = 1, .active = 1, .repeat = 2},
                             .output_trace_dir = (tmp.path / "traces").string()});
    for (int step = 0; step < 5; ++step) {
      torch::Tensor loss;
      {
        auto autocast = acc.autocast();
        loss = net->forward(torch::randn({2, 8})).pow(2).mean();
      }
      acc.backward(loss);
      opt.step();
      opt.zero_grad();
      prof.step();
    }
    EXPECT_EQ(prof.traces().size(), 2u);  // steps 1 and 3; step 4 is after the second cycle
  }
  for (const auto* name : {"profile_0.json", "profile_0_1.json"}) {
    const auto trace = read((tmp.path / "traces" / name).string());
    for (const auto* event :
         {"aten::mm", "accelerate::forward", "accelerate::backward", "accelerate::optimizer_step"}) {
      EXPECT_NE(trace.find(event), std::string::npos) << name << " has no " << event;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.path / "traces" / "profile_0_2.json"));
}

TEST(Profiler, BadKwargsAreConfigErrors) {
  AcceleratorOptions o;
  o.cpu = true;
  Accelerator acc(o);
  EXPECT_THROW(acc.profile({.activities = {"gpu"}}), ConfigError);
  EXPECT_THROW(acc.profile({.schedule_option = ProfileSchedule{.active = 0}}), ConfigError);
  TempDir tmp;
  std::ofstream(tmp.path / "file") << "not a folder";
  EXPECT_THROW(acc.profile({.output_trace_dir = (tmp.path / "file" / "traces").string()}), ConfigError);
  auto running = acc.profile();
  EXPECT_THROW(acc.profile(), StateError);  // LibTorch's profiler is one per process
}
