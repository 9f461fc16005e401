#!/usr/bin/env bash
# The launcher's CPU thread default on an idle and on a loaded machine: per-step time of training_bench (the
# Fashion-MNIST CNN, batch 64, 1 process under `accelerate-cpp launch --cpu`) for intra-op threads 1 and all cores,
# with OpenMP's default wait policy (threads spin a while for work) and OMP_WAIT_POLICY=PASSIVE (they sleep).
# "Loaded": one busy-looping process per core but one runs beside it (another job, a notebook kernel). The
# variants alternate within each round; medians over rounds, as ratios to the idle machine's default.
#   bash bench/threads_bench.sh [rounds] [pairs]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/build/bin"
ROUNDS="${1:-3}"
PAIRS="${2:-60}"
CORES=$(nproc)
HOG=$((CORES > 1 ? CORES - 1 : 1))
echo "processor: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $CORES cores; load: $HOG busy process(es)"
declare -A RESULTS
run_variant() {  # threads policy -> ms/step of the accelerate loop
  local threads="$1" policy="$2" env=()
  [ "$policy" = passive ] && env=(OMP_WAIT_POLICY=PASSIVE)
  env "${env[@]}" "$BIN/accelerate-cpp" launch --cpu --num_processes 1 --num_cpu_threads_per_process "$threads" \
    "$BIN/training_bench" "$PAIRS" | awk '/^accelerate-cpp:/ {print $2}'
}
hogs=()
start_load() { for _ in $(seq "$HOG"); do (while :; do :; done) & hogs+=($!); done; }
stop_load() { ((${#hogs[@]})) && kill "${hogs[@]}" 2>/dev/null; wait "${hogs[@]}" 2>/dev/null || true; hogs=(); }
trap stop_load EXIT
for round in $(seq "$ROUNDS"); do
  for machine in idle loaded; do
    [ "$machine" = loaded ] && start_load
    for threads in "$CORES" 1; do
      for policy in default passive; do
        RESULTS["$machine $threads $policy"]+="$(run_variant "$threads" "$policy") "
      done
    done
    stop_load
  done
  echo "round $round done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(echo "${RESULTS["idle $CORES default"]}" | median)
printf '| machine | threads | wait policy | ms/step (median of %s) | vs idle, %s threads, default |\n|---|---|---|---|---|\n' \
  "$ROUNDS" "$CORES"
for machine in idle loaded; do
  for threads in "$CORES" 1; do
    for policy in default passive; do
      m=$(echo "${RESULTS["$machine $threads $policy"]}" | median)
      printf '| %s | %s | %s | %.2f | %.2fx |\n' "$machine" "$threads" "$policy" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {print a / b}')"
    done
  done
done
