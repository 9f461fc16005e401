#!/usr/bin/env bash
# Issue 26, item 2: the MLflow tracker over MLflow's REST API. A real `mlflow server` (sqlite backend, loopback)
# receives a 2-process GPT run; MLflow's own Python client reads back the params, every metric at its step and the
# status FINISHED. A server stopped mid-run does not fail the run (a warning). No MLFLOW_TRACKING_URI: a clear error.
# Usage: mlflow_gpt.sh ACCELERATE_CPP GPT PYTHON
set -euo pipefail
cli="$1" gpt="$2" python="$3"
tmp="$(mktemp -d)"
server=""
# The server runs in a process group of its own (setsid): its workers go with it.
trap '[ -n "$server" ] && kill -- -"$server" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "mlflow_gpt: FAILED: $*"; echo "$out"; exit 1; }
out=""
"$(dirname "$0")/gpt_data.sh" "$python" "$tmp/data"
start_server() {
  port=$("$python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  setsid "$python" -m mlflow server --backend-store-uri "sqlite:///$tmp/mlflow.db" --default-artifact-root "$tmp/artifacts" \
    --host 127.0.0.1 --port "$port" --workers 1 >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do
    "$python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && return
    sleep 0.5
  done
  out=$(cat "$tmp/server.log"); fail "mlflow server did not start"
}
start_server
export MLFLOW_TRACKING_URI="http://127.0.0.1:$port"
flags=(--data_dir "$tmp/data" --n_layer 1 --n_head 2 --eval_interval 1000 --eval_batches 1 --sample_tokens 0
       --with_tracking --report_to mlflow)
out=$(timeout 180 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --n_embd 32 --block_size 32 \
      --batch_size 4 --max_steps 6 --log_interval 2 2>&1) || fail "the run logging to MLflow failed"
losses=$(grep -o "step=[0-9]* loss=[0-9.]*" <<<"$out" | sed 's/step=//; s/ loss=/ /')
"$python" -W ignore - "$MLFLOW_TRACKING_URI" "$losses" <<'PY' || fail "MLflow does not hold what was logged"
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("gpt")
runs = client.search_runs([experiment.experiment_id])
problems = []
if len(runs) != 1: sys.exit(f"{len(runs)} runs in experiment gpt (one expected: the main process's)")
run = runs[0]
for key, value in {"n_layer": "1", "n_embd": "32", "num_processes": "2"}.items():
    if run.data.params.get(key) != value: problems.append(f"param {key}={run.data.params.get(key)!r}")
printed = {int(s): float(l) for s, l in (line.split() for line in sys.argv[2].splitlines())}
history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train_loss")}
for step, loss in printed.items():
    if abs(history.get(step, -1) - loss) > 1e-5: problems.append(f"train_loss at step {step}: {history.get(step)}")
for key in ("lr", "tokens_per_s", "mfu"):
    if sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) != sorted(printed):
        problems.append(f"{key} not at steps {sorted(printed)}")
if [m.step for m in client.get_metric_history(run.info.run_id, "final_val_loss")] != [6]:
    problems.append("no final_val_loss at step 6")
if run.info.status != "FINISHED": problems.append(f"status {run.info.status}")
if problems or len(printed) != 3: sys.exit(f"steps {sorted(printed)}: " + "; ".join(problems))
print(f"mlflow: run {run.info.run_id} FINISHED, params {sorted(run.data.params)}, train_loss at {sorted(history)}")
PY
# The server stopped mid-run: the run goes on to its end, with a warning.
timeout 180 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --n_embd 64 --block_size 64 --batch_size 8 \
  --max_steps 300 --log_interval 1 >"$tmp/stop.log" 2>&1 &
run=$!
for _ in $(seq 400); do grep -q "step=2 " "$tmp/stop.log" && break; sleep 0.05; done
kill -- -"$server" && wait "$server" 2>/dev/null || true
server=""
wait "$run" || { out=$(cat "$tmp/stop.log"); fail "the run failed when its MLflow server stopped"; }
out=$(cat "$tmp/stop.log")
grep -q "step=300 loss=" <<<"$out" || fail "the run did not reach step 300"
grep -q "mlflow tracker: the server does not answer" <<<"$out" || fail "no warning about the server"
# No server address: a clear error before training.
if out=$(env -u MLFLOW_TRACKING_URI timeout 120 "$cli" launch --num_processes 1 --cpu "$gpt" "${flags[@]}" \
         --max_steps 2 2>&1); then
  fail "a run without MLFLOW_TRACKING_URI succeeded"
fi
grep -q "set MLFLOW_TRACKING_URI" <<<"$out" || fail "no clear error without MLFLOW_TRACKING_URI"
echo "mlflow_gpt: passed (MLflow's client reads back params, metrics at their steps and FINISHED; a stopped server is a warning)"
