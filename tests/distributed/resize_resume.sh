#!/usr/bin/env bash
# A checkpoint written by 2 processes resumes on 1 process (and the other way round) and says how it mapped
# the data position: the Fashion-MNIST example, on a small subset.
set -euo pipefail
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
common=(--limit 2000 --batch_size 32 --output_dir "$dir")

# Trains one epoch on SAVE_N processes with a checkpoint every 10 steps, resumes the newest on RESUME_N for a second
# epoch, and leaves the resumed run's output in $out.
round_trip() {
  rm -rf "$dir/checkpoints"
  "$bin/accelerate-cpp" launch --num_processes "$1" --cpu "$bin/fashion_mnist" "${common[@]}" --epochs 1 \
    --checkpointing_steps 10 > "$dir/save.log" 2>&1
  out=$("$bin/accelerate-cpp" launch --num_processes "$2" --cpu "$bin/fashion_mnist" "${common[@]}" --epochs 2 \
    --resume_from_checkpoint latest 2>&1)
  echo "$out"
  grep -q "test_accuracy=" <<<"$out"
}

round_trip 2 1
grep -q "resuming with 1 process(es) from a checkpoint of 2 processes" <<<"$out"
grep -q "continues at global sample 1920" <<<"$out"   # latest = 3rd save: 30 steps x 32 x 2 processes
round_trip 1 2
grep -q "from a checkpoint of 1 processes" <<<"$out"
echo "resize_resume: passed"
