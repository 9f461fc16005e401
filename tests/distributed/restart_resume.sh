#!/usr/bin/env bash
# launch --max_restarts (torchrun's semantics): rank 1 SIGKILLed mid-run stops the group, which starts again and
# resumes from the newest complete checkpoint (the example's --resume_from_checkpoint latest starts from scratch
# on the first run), ending with one test_accuracy line and exit 0; with --max_restarts 0 the same kill fails the run.
# Usage: restart_resume.sh BIN_DIR
set -euo pipefail
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

# run MAX_RESTARTS: starts the job, kills rank 1 once the first checkpoint is complete, returns the launcher's code.
run() {
  rm -rf "$dir/out"
  "$bin/accelerate-cpp" launch --num_processes 2 --cpu --max_restarts "$1" "$bin/fashion_mnist" --limit 6000 \
    --epochs 2 --batch_size 32 --output_dir "$dir/out" --checkpointing_steps 20 --resume_from_checkpoint latest \
    >"$dir/log" 2>&1 &
  local launcher=$!
  for _ in $(seq 1200); do
    [ -e "$dir/out/checkpoints/checkpoint_0/COMPLETE" ] && break
    sleep 0.05
  done
  local killed=""
  for pid in $(pgrep -f -- "--output_dir $dir/out" || true); do  # this run's workers, not another test's
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "RANK=1"; then
      kill -9 "$pid" && killed=$pid
      break
    fi
  done
  [ -n "$killed" ] || { echo "restart_resume: no rank 1 to kill"; cat "$dir/log"; exit 1; }
  local rc=0
  wait "$launcher" || rc=$?
  return "$rc"
}
fail() { echo "restart_resume: FAILED: $*"; cat "$dir/log"; exit 1; }

rc=0
run 1 || rc=$?
[ "$rc" = 0 ] || fail "--max_restarts 1 exited $rc"
grep -q "no complete checkpoint in .* yet: starting from scratch" "$dir/log" || fail "the first run did not start fresh"
grep -q "restarting all 2 worker(s) (restart 1 of 1)" "$dir/log" || fail "no restart"
grep -q "resumed from .*checkpoint_" "$dir/log" || fail "the restarted group did not resume from a checkpoint"
[ "$(grep -c "test_accuracy=" "$dir/log")" = 1 ] || fail "not exactly one test_accuracy line"

rc=0
run 0 || rc=$?
[ "$rc" != 0 ] || fail "--max_restarts 0 succeeded after a rank was killed"
grep -q "root cause: rank 1 .*SIGKILL" "$dir/log" || fail "the failure does not name rank 1's SIGKILL"
echo "restart_resume: passed"
