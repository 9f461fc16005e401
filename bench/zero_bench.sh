#!/usr/bin/env bash
# The GPT job on 2 CPU processes at ZeRO stages 0, 1, 2 and 3, each with and without --gradient_checkpointing (and
# stage 3 also without prefetching, --no_prefetch),
# alternating configurations within each round: per-rank optimizer-state and gradient bytes and peak RSS (the
# example's memory line, rank 0), and the step time (train_seconds / steps) with its ratio to stage 0 without
# checkpointing of the same round. Each configuration runs twice: as launched (launch keeps glibc's heap between
# steps for speed, docs/launch.md, so the peak is the heap's high-water mark) and with glibc's own trim and mmap
# thresholds (128 KiB), where freed memory goes back and the peak shows what is held at once. The model is wider than the example's default (6 layers, width 384: 10.8M
# parameters, 43 MB of fp32 weights, 86 MB of AdamW state) so that the sharded bytes show in the process's RSS.
# Usage: bench/zero_bench.sh [rounds] [steps]   (repository root, after scripts/setup.sh)
set -euo pipefail
rounds="${1:-2}" steps="${2:-10}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/build/bin"
shakespeare="${ACCELERATE_CPP_DATA:-$HOME/.cache/accelerate-cpp/data}/shakespeare"
# The job ends with a validation loss over the whole validation file; 16k of its tokens keep that short.
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
ln -s "$shakespeare/train.bin" "$data/train.bin"
head -c 32768 "$shakespeare/val.bin" > "$data/val.bin"
model=(--n_layer 6 --n_head 6 --n_embd 384 --block_size 128 --batch_size 8)
configs=("0|" "1|" "2|" "3|" "3|--no_prefetch" "0|--gradient_checkpointing" "1|--gradient_checkpointing"
         "2|--gradient_checkpointing" "3|--gradient_checkpointing")
printf "%-6s %-5s %-24s %13s %14s %14s %12s %14s %10s %8s\n" round stage flags parameters_MB optimizer_MB gradients_MB \
  peak_MB peak_MB_trim "s/step" ratio
for r in $(seq "$rounds"); do
  base=""
  for spec in "${configs[@]}"; do
    IFS='|' read -r stage extra <<<"$spec"
    run() {
      # shellcheck disable=SC2086  # extra is a flag or nothing
      env "$@" "$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/gpt" --data_dir "$data" "${model[@]}" \
        --max_steps "$steps" --eval_interval 1000000 --eval_batches 1 --sample_tokens 0 --zero_stage "$stage" \
        $extra 2>&1
    }
    trimmed=$(run MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 | grep -o "memory: rank=0 .*")
    out=$(run)
    line=$(grep -o "memory: rank=0 .*" <<<"$out")
    mb() { echo "$(grep -o "$1=[0-9]*" <<<"${2:-$line}" | cut -d= -f2) / 1048576" | bc -l; }
    per_step=$(echo "$(grep -o "train_seconds=[0-9.]*" <<<"$out" | tail -1 | cut -d= -f2) / $steps" | bc -l)
    [ -z "$base" ] && base=$per_step
    printf "%-6s %-5s %-24s %13.1f %14.1f %14.1f %12.0f %14.0f %10.3f %8.2f\n" "$r" "$stage" "${extra:--}" \
      "$(mb parameter_bytes)" "$(mb optimizer_state_bytes)" "$(mb gradient_bytes)" "$(mb peak_bytes)" "$(mb peak_bytes "$trimmed")" "$per_step" \
      "$(echo "$per_step / $base" | bc -l)"
  done
done
