#!/usr/bin/env bash
# examples/by_feature end to end on a small part of Fashion-MNIST: each variant runs to the end (two processes
# where the feature is about them), checkpointing resumes from its own checkpoint, preemption exits 75 on SIGTERM
# and the next run resumes. Usage: by_feature.sh BIN_DIR
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
small=(--limit 1200 --epochs 1)

check() {  # check NAME WANT_RC TEXT -- COMMAND...
  local name=$1 want=$2 text=$3
  shift 4
  local out rc
  out=$(timeout 180 "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want || $out != *"$text"* ]]; then
    echo "FAIL: $name -> rc $rc (want $want, output with '$text'):"
    echo "$out" | tail -8
    failures=$((failures + 1))
  else
    echo "ok: $name"
  fi
}
launch2=("$bin/accelerate-cpp" launch --num_processes 2 --cpu --timeout 60)

check base 0 "epoch 0 accuracy" -- "$bin/by_feature_base" "${small[@]}"
check gradient_accumulation 0 "global batch: 256 samples" -- \
  "${launch2[@]}" "$bin/by_feature_gradient_accumulation" "${small[@]}" --gradient_accumulation_steps 2
check tracking 0 "train_loss" -- "$bin/by_feature_tracking" "${small[@]}" --report_to jsonl --project_dir "$tmp/t"
ls "$tmp/t/by_feature_tracking" >/dev/null 2>&1 || { echo "FAIL: tracking wrote nothing"; failures=$((failures + 1)); }
check memory 0 "zero_stage=1" -- "${launch2[@]}" "$bin/by_feature_memory" "${small[@]}" --zero_stage 1
check memory_launch_stage 0 "zero_stage=2" -- "$bin/accelerate-cpp" launch --num_processes 2 --cpu --timeout 60 \
  --zero_stage 2 "$bin/by_feature_memory" "${small[@]}"
check checkpointing 0 "checkpoint_1" -- \
  "$bin/by_feature_checkpointing" "${small[@]}" --output_dir "$tmp/c" --checkpointing_steps 10
check checkpointing_resume 0 "resumed from" -- \
  "$bin/by_feature_checkpointing" --limit 1200 --epochs 2 --output_dir "$tmp/c" --resume_from_checkpoint latest

# Preemption: SIGTERM once training runs; the saved checkpoint is where the next run starts.
"$bin/by_feature_preemption" --limit 6000 --epochs 3 --output_dir "$tmp/p" >"$tmp/p.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "training from epoch" "$tmp/p.log" 2>/dev/null && break; sleep 0.1; done
sleep 1  # into the loop, whose first check_preemption() installs the handlers
kill -TERM "$pid"
wait "$pid"
rc=$?
if [[ $rc -ne 75 ]] || ! grep -q "preempted: saved" "$tmp/p.log"; then
  echo "FAIL: preemption -> rc $rc (want 75):"; tail -5 "$tmp/p.log"; failures=$((failures + 1))
else
  echo "ok: preemption"
fi
check preemption_resume 0 "resumed from" -- "$bin/by_feature_preemption" --limit 6000 --epochs 1 --output_dir "$tmp/p"

check bad_flag 2 "flag --epochs: 'x' is not a valid number" -- "$bin/by_feature_base" --epochs x
exit $((failures > 0))
