// What the profiler's named ranges cost while no profiler runs, on a step small enough for a fixed cost to show
// (a 2-layer MLP of width 64, batch 32: tens of microseconds), one process:
//   build/bin/profiler_bench
// Three modes, alternating within each repetition so drift hits all alike: RecordFunction switched off for the
// thread (at::RecordFunctionGuard(false): no range, nor any of LibTorch's own observers, is even checked), the
// default (the ranges are checked, no profiler), and the profiler recording (for scale). Prints the median step
// time and the ratio to the first (target for the default: < 1.02).
#include <accelerate/accelerate.hpp>

#include <ATen/record_function.h>
#include <cstdio>
#include <optional>
#include <torch/torch.h>

#include "bench_util.hpp"

int main() {
  accelerate::AcceleratorOptions options;
  options.cpu = true;
  accelerate::Accelerator acc(options);
  torch::nn::Sequential model(torch::nn::Linear(64, 64), torch::nn::ReLU(), torch::nn::Linear(64, 64));
  torch::optim::SGD sgd(model->parameters(), 0.01);
  auto [net, opt] = acc.prepare(model, sgd);
  const auto x = torch::randn({32, 64});
  auto step = [&] {
    torch::Tensor loss;
    {
      auto autocast = acc.autocast();
      loss = net->forward(x).pow(2).mean();
    }
    acc.backward(loss);
    opt.step();
    opt.zero_grad();
  };
  const char* names[] = {"RecordFunction off", "default (ranges, no profiler)", "profiler recording"};
  constexpr int kSteps = 200, kRepetitions = 31;
  std::vector<std::vector<double>> times(3);
  for (int i = 0; i < 200; ++i) step();  // warm-up
  for (int rep = 0; rep < kRepetitions; ++rep) {
    for (int mode = 0; mode < 3; ++mode) {
      std::optional<at::RecordFunctionGuard> off;
      if (mode == 0) off.emplace(false);
      std::optional<accelerate::Profiler> profiler;
      if (mode == 2) profiler.emplace(acc.profile());  // no output folder: nothing written
      const auto t0 = bench::Clock::now();
      for (int i = 0; i < kSteps; ++i) step();
      times[mode].push_back(std::chrono::duration<double, std::micro>(bench::Clock::now() - t0).count() / kSteps);
    }
  }
  const double base = bench::median(times[0]);
  std::printf("%-32s %12s %8s\n", "mode", "us/step", "ratio");
  for (int mode = 0; mode < 3; ++mode) {
    std::printf("%-32s %12.1f %8.3f\n", names[mode], bench::median(times[mode]), bench::median(times[mode]) / base);
  }
  return 0;
}
