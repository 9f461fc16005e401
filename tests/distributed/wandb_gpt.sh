#!/usr/bin/env bash
# Issue 26, item 1: the W&B tracker through W&B's own SDK. A 2-process GPT run with --use_wandb under
# WANDB_MODE=offline leaves one offline run (rank 0 only), which the SDK's own reader (wandb's DataStore and
# protobuf records, from the venv's Python) finds with every logged metric at its step, the config and a clean exit.
# Killing the tracker's helper process mid-run leaves training finishing with rc 0 and a warning; a preemption
# notice sent to every process (as SLURM does) leaves the helper alive to finish the run. Without wandb in
# the Python used, init_trackers is a clear error naming the install command.
# Usage: wandb_gpt.sh ACCELERATE_CPP GPT PYTHON
set -euo pipefail
cli="$1" gpt="$2" python="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "wandb_gpt: FAILED: $*"; echo "$out"; exit 1; }
"$(dirname "$0")/gpt_data.sh" "$python" "$tmp/data"
export ACCELERATE_CPP_PYTHON="$python" WANDB_MODE=offline WANDB_SILENT=true
common=(--data_dir "$tmp/data" --n_layer 1 --n_head 2 --eval_interval 1000 --eval_batches 1 --sample_tokens 0
        --use_wandb)
flags=("${common[@]}" --n_embd 32 --block_size 32 --batch_size 4)
out=$(WANDB_DIR="$tmp/wb" timeout 180 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --max_steps 6 \
      --log_interval 2 2>&1) || fail "the run with --use_wandb failed"
runs=("$tmp"/wb/wandb/offline-run-*/run-*.wandb)
[ "${#runs[@]}" = 1 ] && [ -f "${runs[0]}" ] || fail "expected one offline run (rank 0 only), found ${runs[*]}"
losses=$(grep -o "step=[0-9]* loss=[0-9.]*" <<<"$out" | sed 's/step=//; s/ loss=/ /')
"$python" -W ignore - "${runs[0]}" "$losses" <<'PY' || fail "the offline run does not hold what was logged"
import json, sys
try:
    from wandb.sdk.internal import datastore
except ImportError:
    sys.exit("this wandb has no Python reader of offline runs: install wandb==0.21.4 (scripts/setup.sh does)")
from wandb.proto import wandb_internal_pb2 as pb
store = datastore.DataStore()
store.open_for_scan(sys.argv[1])
history, config, project, exit_code = {}, {}, None, None
while (record := store.scan_record()) is not None:
    r = pb.Record()
    r.ParseFromString(record[1])
    kind = r.WhichOneof("record_type")
    if kind == "run":
        project = r.run.project
        config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.run.config.update})
    elif kind == "config":
        config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.config.update})
    elif kind == "history":
        items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
        history.setdefault(r.history.step.num, {}).update(items)
    elif kind == "exit":
        exit_code = r.exit.exit_code
printed = {int(s): float(l) for s, l in (line.split() for line in sys.argv[2].splitlines())}
problems = []
if project != "gpt": problems.append(f"project {project!r}")
for key, value in {"n_layer": 1, "n_embd": 32, "num_processes": 2}.items():
    if config.get(key) != value: problems.append(f"config {key}={config.get(key)!r}")
for step, loss in printed.items():
    got = history.get(step, {})
    if abs(got.get("train_loss", -1) - loss) > 1e-5: problems.append(f"step {step}: train_loss {got.get('train_loss')}")
    for key in ("lr", "tokens_per_s", "mfu"):
        if key not in got: problems.append(f"step {step}: no {key}")
if "final_val_loss" not in history.get(6, {}): problems.append("no final_val_loss at step 6")
if exit_code != 0: problems.append(f"exit code {exit_code}")
if problems or len(printed) != 3: sys.exit(f"steps {sorted(printed)}; " + "; ".join(problems))
print(f"offline run: steps {sorted(history)}, config {sorted(config)}")
PY
# The helper killed mid-run: training goes on to the end, with a warning.
WANDB_DIR="$tmp/wb2" timeout 180 "$cli" launch --num_processes 2 --cpu "$gpt" "${common[@]}" --n_embd 64 \
  --block_size 64 --batch_size 8 --max_steps 300 --log_interval 1 >"$tmp/kill.log" 2>&1 &
run=$!
helper=""
for _ in $(seq 200); do
  helper=$(pgrep -f "wandb.init\(project=project" | head -1) || true
  [ -n "$helper" ] && grep -q "step=2 " "$tmp/kill.log" && break
  sleep 0.05
done
[ -n "$helper" ] || { out=$(cat "$tmp/kill.log"); fail "no W&B helper process found"; }
kill -9 "$helper"
wait "$run" || { out=$(cat "$tmp/kill.log"); fail "the run failed after its W&B helper was killed"; }
out=$(cat "$tmp/kill.log")
grep -q "step=300 loss=" <<<"$out" || fail "the run did not reach step 300"
grep -q "wandb tracker: its helper process (pid $helper) is gone" <<<"$out" || fail "no warning about the helper"
# A preemption notice as SLURM sends it, to every process of the step (launcher, workers, and the W&B helper and
# its service): the workers save and exit 75, and the helper, which ignores the notice, still finishes the run.
WANDB_DIR="$tmp/wb3" "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --max_steps 3000 --log_interval 10 \
  --output_dir "$tmp/out3" >"$tmp/notice.log" 2>&1 &
run=$!
for _ in $(seq 600); do
  grep -q "step=50 " "$tmp/notice.log" && break
  sleep 0.1
done
descendants() { for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
kill -USR1 "$run" $(descendants "$run")
rc=0
timeout 120 tail --pid="$run" -f /dev/null || kill -9 "$run"  # a deadline: never a hang
wait "$run" || rc=$?
out=$(cat "$tmp/notice.log")
[ "$rc" = 75 ] || fail "the run exited $rc after the notice, not 75"
grep -q "is gone" <<<"$out" && fail "the W&B helper died of the notice"
notice_runs=("$tmp"/wb3/wandb/offline-run-*/run-*.wandb)
"$python" -W ignore - "${notice_runs[0]}" <<'PY' || fail "the offline run of the preempted job was not finished"
import sys
from wandb.sdk.internal import datastore
from wandb.proto import wandb_internal_pb2 as pb
store = datastore.DataStore()
store.open_for_scan(sys.argv[1])
codes = []
while (record := store.scan_record()) is not None:
    r = pb.Record()
    r.ParseFromString(record[1])
    if r.WhichOneof("record_type") == "exit":
        codes.append(r.exit.exit_code)
sys.exit(0 if codes == [0] else f"exit records {codes}")
PY
# No wandb where the helper runs (python -S: no site-packages): a clear error at init_trackers.
printf '#!/bin/sh\nexec %s -S "$@"\n' "$python" >"$tmp/python-without-wandb" && chmod +x "$tmp/python-without-wandb"
if out=$(ACCELERATE_CPP_PYTHON="$tmp/python-without-wandb" timeout 120 "$cli" launch --num_processes 2 --cpu "$gpt" \
         "${flags[@]}" --max_steps 2 2>&1); then
  fail "the run without wandb succeeded"
fi
grep -q "cannot import wandb.*pip install wandb" <<<"$out" || fail "no clear error without wandb"
echo "wandb_gpt: passed (offline run read back by W&B's reader; a killed helper is a warning; a notice to every"
echo "  process leaves the run finished; no wandb is a clear error)"
