#!/usr/bin/env bash
# A checkpoint resumes under another data-loader configuration (other world size, other batch size) and says how
# it mapped the data position, by global sample index, including the samples seen twice when the old position
# is not a multiple of the new global batch: the Fashion-MNIST example, on a small subset.
set -euo pipefail
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
common=(--limit 2000 --output_dir "$dir")

# round_trip SAVE_N SAVE_BATCH RESUME_N RESUME_BATCH STEPS: trains one epoch on SAVE_N processes with a checkpoint
# every STEPS steps, resumes the newest on RESUME_N processes for a second epoch, and leaves its output in $out.
round_trip() {
  rm -rf "$dir/checkpoints"
  "$bin/accelerate-cpp" launch --num_processes "$1" --cpu "$bin/fashion_mnist" "${common[@]}" --batch_size "$2" \
    --epochs 1 --checkpointing_steps "$5" > "$dir/save.log" 2>&1
  out=$("$bin/accelerate-cpp" launch --num_processes "$3" --cpu "$bin/fashion_mnist" "${common[@]}" \
    --batch_size "$4" --epochs 2 --resume_from_checkpoint latest 2>&1)
  echo "$out"
  grep -q "test_accuracy=" <<<"$out"
}
expect() { grep -qF -- "$1" <<<"$out" || { echo "resize_resume: expected: $1"; exit 1; }; }

round_trip 2 32 1 32 10
expect "resuming with 1 process(es) from a checkpoint of 2 processes"
expect "it continues at sample 1920 (60 global batches of 32)"   # latest = 3rd save: 30 steps x 32 x 2 processes
round_trip 1 32 2 32 10
expect "from a checkpoint of 1 processes"
# Issue 10, case 5: the same world size, another batch size (64 -> 100 per process, as a user would try).
round_trip 2 64 2 100 10
expect "batch_size 64 -> 100"
expect "it continues at sample 1200 (6 global batches of 200)"   # 10 steps x 128 = 1280 samples handed out
expect "samples 1200..1279 of the epoch's order (80 samples) are seen a second time"
# 3 processes from a 2-process checkpoint: the repeated samples are reported too.
round_trip 2 32 3 32 7
expect "processes 2 -> 3"
expect "samples 1728..1791 of the epoch's order (64 samples) are seen a second time"  # 28 x 64 = 1792 = 18.67 x 96
echo "resize_resume: passed"
