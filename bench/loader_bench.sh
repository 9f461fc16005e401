#!/usr/bin/env bash
# Loader throughput (samples/s) of accelerate::DataLoader (bench/loader_bench.cpp) against PyTorch's DataLoader
# (bench/loader_reference.py) on the same CPU-heavy collate, 0/1/2/4 workers, alternating runs. One intra-op
# thread in both: the loading is parallelised by the workers alone (PyTorch's workers use one thread each).
# Usage: bench/loader_bench.sh [rounds] [epochs]   (repository root, after scripts/setup.sh)
set -euo pipefail
rounds="${1:-3}" epochs="${2:-2}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(grep ACCELERATE_PYTHON: "$root/build/CMakeCache.txt" | cut -d= -f2)"
rate() { grep -o "samples_per_s=[0-9.]*" | cut -d= -f2; }
printf "%-8s %-6s %14s %14s %7s\n" workers round "C++ samples/s" "Python samp/s" ratio
for w in 0 1 2 4; do
  for r in $(seq "$rounds"); do
    cpp=$(OMP_NUM_THREADS=1 "$root/build/bin/loader_bench" "$w" "$epochs" | rate)
    python=$(OMP_NUM_THREADS=1 "$py" "$root/bench/loader_reference.py" "$w" "$epochs" | rate)
    printf "%-8s %-6s %14.0f %14.0f %7.2f\n" "$w" "$r" "$cpp" "$python" "$(echo "$cpp / $python" | bc -l)"
  done
done
