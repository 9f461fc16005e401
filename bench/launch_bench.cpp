// Launch overhead: wall time from start until every rank is past rendezvous and has exited, for the probe
// started alone (baseline: loading LibTorch, a world of one) and under `accelerate-cpp launch` with 2 and 4
// processes. Median of N runs each, interleaved so that machine noise hits all variants alike.
//   build/bin/launch_bench [runs=7]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "bench_util.hpp"

namespace {
using bench::Clock;
using bench::median;
double run_seconds(const std::vector<std::string>& argv) {
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "launch_bench: %s failed\n", argv[0].c_str());
    std::exit(1);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 7;
  std::string dir = argv[0];
  dir = dir.substr(0, dir.rfind('/') + 1);
  const std::string probe = dir + "rendezvous_probe", launcher = dir + "accelerate-cpp";
  std::vector<std::pair<std::string, std::vector<std::string>>> variants = {
      {"probe alone (1 process, no launcher)", {probe}},
      {"launch --num_processes 1", {launcher, "launch", "--num_processes", "1", "--cpu", probe}},
      {"launch --num_processes 2", {launcher, "launch", "--num_processes", "2", "--cpu", probe}},
      {"launch --num_processes 4", {launcher, "launch", "--num_processes", "4", "--cpu", probe}},
  };
  std::vector<std::vector<double>> times(variants.size());
  for (size_t i = 0; i < variants.size(); ++i) run_seconds(variants[i].second);  // warm the page cache
  for (int r = 0; r < runs; ++r) {
    for (size_t i = 0; i < variants.size(); ++i) times[i].push_back(run_seconds(variants[i].second));
  }
  const double base = median(times[0]);
  std::printf("%-40s %12s %10s\n", "variant", "median [ms]", "vs alone");
  for (size_t i = 0; i < variants.size(); ++i) {
    const double m = median(times[i]);
    std::printf("%-40s %12.1f %9.2fx\n", variants[i].first.c_str(), m * 1e3, m / base);
  }
  return 0;
}
