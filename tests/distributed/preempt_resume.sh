#!/usr/bin/env bash
# Preemption of the Fashion-MNIST example: SIGTERM to the launcher mid-epoch (--output_dir given) makes every
# worker save a complete checkpoint at the same step and exit 75; the launcher exits 75; --resume_from_checkpoint
# latest continues mid-epoch from that checkpoint and ends with one test_accuracy line. A plain SIGINT (Ctrl-C)
# still stops a run at once, without saving.
# Usage: preempt_resume.sh BIN_DIR
set -euo pipefail
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "preempt_resume: FAILED: $*"; cat "$dir/log"; exit 1; }

# start SIGNAL: runs the job, sends SIGNAL to the launcher once checkpoint_0 (step 20) is complete, returns its code.
start() {
  rm -rf "$dir/out"
  "$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/fashion_mnist" --limit 6000 --epochs 1 \
    --batch_size 32 --output_dir "$dir/out" --checkpointing_steps 20 >"$dir/log" 2>&1 &
  local launcher=$!
  for _ in $(seq 1200); do
    [ -e "$dir/out/checkpoints/checkpoint_0/COMPLETE" ] && break
    sleep 0.05
  done
  [ -e "$dir/out/checkpoints/checkpoint_0/COMPLETE" ] || { kill -9 "$launcher"; fail "no first checkpoint"; }
  sleep 0.3
  local sent=$SECONDS
  kill -"$1" "$launcher"
  local rc=0
  wait "$launcher" || rc=$?
  elapsed=$((SECONDS - sent))
  return "$rc"
}

rc=0
start TERM || rc=$?
[ "$rc" = 75 ] || fail "the launcher exited $rc after SIGTERM, not 75"
grep -q "received SIGTERM; 2 worker(s) saved and exited with code 75" "$dir/log" || fail "no preemption summary"
saved=$(sed -n 's/.*preempted: saved \(.*checkpoint_[0-9]*\) at epoch 0 after \([0-9]*\) batches.*/\1 \2/p' "$dir/log")
[ -n "$saved" ] || fail "the example did not say where it saved"
set -- $saved
[ -e "$1/COMPLETE" ] || fail "$1 is not complete"
[ "$2" -gt 20 ] || fail "saved after $2 batches: not the current step (checkpoint_0 was at 20)"
grep -q "test_accuracy=" "$dir/log" && fail "a preempted run went on to the end"

"$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/fashion_mnist" --limit 6000 --epochs 1 \
  --batch_size 32 --output_dir "$dir/out" --checkpointing_steps 20 --resume_from_checkpoint latest \
  >"$dir/log" 2>&1 || fail "the resumed run failed"
grep -q "resumed from $1 at epoch 0 after $2 batches of it" "$dir/log" || fail "did not resume from $1 after $2 batches"
[ "$(grep -c "test_accuracy=" "$dir/log")" = 1 ] || fail "not exactly one test_accuracy line"

rc=0
start INT || rc=$?
[ "$rc" = 130 ] || fail "the launcher exited $rc after SIGINT, not 130"
[ "$elapsed" -le 3 ] || fail "SIGINT took $elapsed s to stop the run"
grep -q "preempted: saved" "$dir/log" && fail "SIGINT saved a checkpoint"
echo "preempt_resume: passed"
