#!/usr/bin/env bash
# Training tokens per second of examples/gpt against the same model, data, batch and loop in Python with HF
# Accelerate and PyTorch (bench/gpt_reference.py), 1 and 2 CPU processes, alternating runs; both with the same
# intra-op threads per process (cores / processes). Two models: the example's default (4 layers, width 128, context
# 128, batch 16: the step is almost all matrix multiplies) and a small one (2 layers, width 64, context 64, batch 4:
# the step is dominated by the cost of launching operators). Also the peak RSS of the default 2-process job.
# Usage: bench/gpt_bench.sh [rounds] [steps of the default model]   (repository root, after scripts/setup.sh)
set -euo pipefail
rounds="${1:-3}" steps="${2:-100}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/build/bin"
py="$(grep ACCELERATE_PYTHON: "$root/build/CMakeCache.txt" | cut -d= -f2)"
data="${ACCELERATE_CPP_DATA:-$HOME/.cache/accelerate-cpp/data}/shakespeare"
cores="$(nproc)"
seconds_of() { grep -o "train_seconds=[0-9.]*" | tail -1 | cut -d= -f2; }
# name | flags (the same for both programs) | steps | tokens per step and process
models=("default||$steps|$((16 * 128))"
        "small|--n_layer 2 --n_head 2 --n_embd 64 --block_size 64 --batch_size 4|$((steps * 20))|$((4 * 64))")
# accelerate-cpp launch keeps glibc's heap between steps (docs/launch.md); the last column gives Python the same
# two variables, to show what they do there.
malloc_env=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824)
printf "%-8s %-10s %-6s %12s %12s %7s %14s\n" model processes round "C++ tok/s" "Python tok/s" ratio "Python+malloc"
for spec in "${models[@]}"; do
  IFS='|' read -r name flags n_steps tokens <<<"$spec"
  for n in 1 2; do
    threads=$((cores / n > 0 ? cores / n : 1))
    for r in $(seq "$rounds"); do
      # shellcheck disable=SC2086  # flags are words
      cpp=$(OMP_NUM_THREADS=$threads "$bin/accelerate-cpp" launch --num_processes "$n" --cpu \
        --num_cpu_threads_per_process "$threads" "$bin/gpt" $flags --max_steps "$n_steps" \
        --eval_interval 1000000 --sample_tokens 0 --num_workers 1 2>&1 | seconds_of)
      # shellcheck disable=SC2086
      python=$(OMP_NUM_THREADS=$threads "$py" -m torch.distributed.run --standalone --nproc_per_node "$n" \
        "$root/bench/gpt_reference.py" --data_dir "$data" $flags --max_steps "$n_steps" --num_workers 1 2>&1 |
        seconds_of)
      # shellcheck disable=SC2086
      tuned=$(env "${malloc_env[@]}" OMP_NUM_THREADS=$threads "$py" -m torch.distributed.run --standalone \
        --nproc_per_node "$n" "$root/bench/gpt_reference.py" --data_dir "$data" $flags --max_steps "$n_steps" \
        --num_workers 1 2>&1 | seconds_of)
      total=$((n_steps * tokens * n))
      printf "%-8s %-10s %-6s %12.0f %12.0f %7.2f %14.0f\n" "$name" "$n" "$r" "$(echo "$total / $cpp" | bc -l)" \
        "$(echo "$total / $python" | bc -l)" "$(echo "$python / $cpp" | bc -l)" "$(echo "$total / $tuned" | bc -l)"
    done
  done
done
# Peak memory of the default job, one process of 2 (kB, from GNU time's maximum resident set size).
/usr/bin/time -f "peak_rss_kb=%M" "$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/gpt" --max_steps 50 \
  --eval_interval 1000000 --sample_tokens 0 2>&1 | grep -E "peak_rss_kb|val_loss" || true
