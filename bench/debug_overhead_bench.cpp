// What the always-on hang-report bookkeeping and debug mode cost per collective, for small tensors (where a
// fixed cost shows most). Run under the launcher:
//   build/bin/accelerate-cpp launch --num_processes 2 --cpu build/bin/debug_overhead_bench
// Four modes on the same group, alternating within each repetition so drift hits all alike: off (no
// bookkeeping), the hang report waiting in one piece (as before the deadlock check), the hang report with the
// deadlock check (the default: waits in slices), and debug mode on top. Rank 0 prints the median time per call
// and the ratios to "off" and to the plain hang report (target for the always-on part: < 1.05).
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "detail/communicator.hpp"

#include "bench_util.hpp"

namespace {
using bench::Clock;
using bench::median;

}  // namespace

int main() {
  accelerate::ProcessState state(accelerate::ProcessStateOptions{.cpu = true});
  auto* comm = accelerate::detail::communicator_of(state);
  if (!comm) {
    std::fprintf(stderr, "run it under the launcher with 2 or more processes\n");
    return 1;
  }
  const auto small = at::ones({4});
  const std::vector<std::pair<const char*, std::function<void()>>> ops = {
      {"reduce (4 floats)", [&] { accelerate::reduce(state, small, accelerate::Reduction::Sum); }},
      {"gather (4 floats)", [&] { accelerate::gather(state, small); }},
      {"broadcast (4 floats)", [&] { accelerate::broadcast(state, small.clone(), 0); }},
  };
  struct Mode {
    const char* name;
    bool hang_report, debug, deadlock_check;
  };
  const std::vector<Mode> modes = {{"off", false, false, false},
                                   {"report, 1 wait", true, false, false},
                                   {"+ deadlock chk", true, false, true},
                                   {"+ debug mode", true, true, true}};
  constexpr int kCalls = 300, kRepetitions = 31;
  if (state.is_main_process()) {
    std::printf("%-22s %-14s %12s %8s %10s\n", "collective", "mode", "us/call", "vs off", "vs report");
  }
  for (const auto& [name, op] : ops) {
    std::vector<std::vector<double>> times(modes.size());
    for (int i = 0; i < 100; ++i) op();  // warm-up
    for (int rep = 0; rep < kRepetitions; ++rep) {
      for (size_t m = 0; m < modes.size(); ++m) {
        comm->set_modes_for_benchmark(modes[m].hang_report, modes[m].debug, modes[m].deadlock_check);
        accelerate::wait_for_everyone(state);
        const auto t0 = Clock::now();
        for (int i = 0; i < kCalls; ++i) op();
        times[m].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kCalls);
      }
    }
    const double off = median(times[0]), report = median(times[1]);
    for (size_t m = 0; m < modes.size(); ++m) {
      if (state.is_main_process()) {
        std::printf("%-22s %-14s %12.1f %8.3f %10.3f\n", name, modes[m].name, median(times[m]), median(times[m]) / off,
                    median(times[m]) / report);
      }
    }
  }
  // The bookkeeping alone, without the network's noise: one enter/leave pair per collective.
  comm->set_modes_for_benchmark(/*hang_report=*/true, /*debug=*/false);
  constexpr int kPairs = 1000000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kPairs; ++i) {
    comm->enter("reduce");
    comm->leave();
  }
  const double pair_ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kPairs;
  if (state.is_main_process()) std::printf("hang-report bookkeeping alone: %.0f ns per collective\n", pair_ns);
  state.destroy_process_group();
  return 0;
}
