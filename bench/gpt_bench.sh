#!/usr/bin/env bash
# Training tokens per second of examples/gpt against the same model, data, batch and loop in Python with HF
# Accelerate and PyTorch (bench/gpt_reference.py), 1 and 2 CPU processes, alternating runs; both with the same
# intra-op threads per process (cores / processes). Also the peak RSS of each process of the C++ job.
# Usage: bench/gpt_bench.sh [rounds] [steps]   (from the repository root, after scripts/setup.sh)
set -euo pipefail
rounds="${1:-3}" steps="${2:-100}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/build/bin"
py="$(grep ACCELERATE_PYTHON: "$root/build/CMakeCache.txt" | cut -d= -f2)"
data="${ACCELERATE_CPP_DATA:-$HOME/.cache/accelerate-cpp/data}/shakespeare"
cores="$(nproc)"
tokens_per_step() { echo $((16 * 128 * $1)); }  # batch 16 x block 128 per process (the defaults)
seconds_of() { grep -o "train_seconds=[0-9.]*" | tail -1 | cut -d= -f2; }
printf "%-10s %-6s %12s %12s\n" processes round "C++ tok/s" "Python tok/s"
for n in 1 2; do
  threads=$((cores / n > 0 ? cores / n : 1))
  for r in $(seq "$rounds"); do
    cpp=$(OMP_NUM_THREADS=$threads "$bin/accelerate-cpp" launch --num_processes "$n" --cpu \
      --num_cpu_threads_per_process "$threads" "$bin/gpt" --max_steps "$steps" --eval_interval 1000000 \
      --sample_tokens 0 --num_workers 1 2>&1 | seconds_of)
    python=$(OMP_NUM_THREADS=$threads "$py" -m torch.distributed.run --standalone --nproc_per_node "$n" \
      "$root/bench/gpt_reference.py" --data_dir "$data" --max_steps "$steps" --num_workers 1 2>&1 | seconds_of)
    tok=$(tokens_per_step "$n")
    printf "%-10s %-6s %12.0f %12.0f\n" "$n" "$r" "$(echo "$steps * $tok / $cpp" | bc -l)" \
      "$(echo "$steps * $tok / $python" | bc -l)"
  done
done
# Peak memory of the default job, one process of 2 (kB, from GNU time's maximum resident set size).
/usr/bin/time -f "peak_rss_kb=%M" "$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/gpt" --max_steps 50 \
  --eval_interval 1000000 --sample_tokens 0 2>&1 | grep -E "peak_rss_kb|val_loss" || true
