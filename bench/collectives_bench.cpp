// Our gather/reduce against raw c10d ProcessGroupGloo allgather/allreduce on the same group, 4 KB to 64 MB.
// Run under the launcher:  build/bin/accelerate-cpp launch --num_processes 2 --cpu build/bin/collectives_bench
// Rank 0 prints, per size, the median time of each and the ratio raw/ours (1.0 = no overhead; target >= 0.95).
// Raw and ours alternate within each repetition, so drift hits both alike.
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "detail/communicator.hpp"

#include "bench_util.hpp"

namespace {
using bench::Clock;
using bench::median;

template <class F>
double time_once(const accelerate::ProcessState& state, F&& f) {
  accelerate::wait_for_everyone(state);  // start together
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

int main() {
  accelerate::ProcessStateOptions options;
  options.cpu = true;
  accelerate::ProcessState state(options);
  auto& comm = *accelerate::detail::communicator_of(state);
  auto& group = comm.group();
  const int world = state.num_processes();
  if (state.is_main_process()) {
    std::printf("%d processes, Gloo over loopback; median of repetitions; ratio = raw time / our time\n", world);
    std::printf("%10s | %12s %12s %7s | %12s %12s %7s\n", "bytes", "allreduce us", "reduce us", "ratio", "allgather us",
                "gather us", "ratio");
  }
  for (int64_t bytes = 4 << 10; bytes <= (64 << 20); bytes *= 4) {
    const int64_t n = bytes / 4;
    auto x = at::randn({n});
    const int reps = static_cast<int>(std::clamp<int64_t>((int64_t{1} << 30) / (bytes * world), 20, 400));
    std::vector<double> raw_ar, our_ar, raw_ag, our_ag;
    for (int r = 0; r < reps + 2; ++r) {
      const bool warm = r >= 2;
      auto raw_allreduce = [&] {
        std::vector<at::Tensor> v{x.clone()};  // the clone HF's reduce also makes, so only the wrapper differs
        comm.wait(group.allreduce(v), "allreduce");
      };
      auto our_reduce = [&] { accelerate::reduce(state, x, accelerate::Reduction::Sum); };
      auto raw_allgather = [&] {
        std::vector<at::Tensor> in{x};
        std::vector<std::vector<at::Tensor>> out(1);
        for (int i = 0; i < world; ++i) out[0].push_back(at::empty_like(x));
        comm.wait(group.allgather(out, in), "allgather");
        auto all = at::cat(out[0]);  // HF's gloo path: all_gather into a list, then cat
      };
      auto our_gather = [&] { accelerate::gather(state, x); };
      // Alternate which one goes first, so neither always runs on a warmer cache.
      double a, b, c, d;
      if (r % 2 == 0) {
        a = time_once(state, raw_allreduce), b = time_once(state, our_reduce);
        c = time_once(state, raw_allgather), d = time_once(state, our_gather);
      } else {
        b = time_once(state, our_reduce), a = time_once(state, raw_allreduce);
        d = time_once(state, our_gather), c = time_once(state, raw_allgather);
      }
      if (warm) {
        raw_ar.push_back(a), our_ar.push_back(b), raw_ag.push_back(c), our_ag.push_back(d);
      }
    }
    if (state.is_main_process()) {
      const double ra = median(raw_ar), oa = median(our_ar), rg = median(raw_ag), og = median(our_ag);
      std::printf("%10lld | %12.1f %12.1f %7.3f | %12.1f %12.1f %7.3f\n", static_cast<long long>(bytes), ra * 1e6,
                  oa * 1e6, ra / oa, rg * 1e6, og * 1e6, rg / og);
      std::fflush(stdout);
    }
  }
  state.destroy_process_group();
  return 0;
}
