#!/usr/bin/env bash
# Kills a process at random moments while it writes checkpoints, then checks what is on disk:
# every complete checkpoint loads with the right weights (0 corrupt loads) and none that had completed was lost
# (at least min(2, saves completed) remain, total_limit being 2).
#   scripts/kill-test-checkpoints.sh [TRIALS=50] [BIN_DIR=build/bin]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRIALS="${1:-50}"
BIN="${2:-$ROOT/build/bin}/checkpoint_kill_worker"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
corrupt=0; lost=0; loaded=0
for trial in $(seq 1 "$TRIALS"); do
  dir="$WORK/run$trial"
  "$BIN" save "$dir" > "$WORK/save.log" 2>&1 &
  pid=$!
  sleep "0.$(( RANDOM % 9 + 1 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  saved=$(grep -c '^saved ' "$WORK/save.log")
  if [ ! -d "$dir/checkpoints" ]; then continue; fi
  out=$("$BIN" verify "$dir" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then corrupt=$((corrupt + 1)); echo "trial $trial: $out"; continue; fi
  complete=$(echo "$out" | awk '/^complete/ {print $2}')
  expected=$(( saved < 2 ? saved : 2 ))
  if [ "$complete" -lt "$expected" ]; then lost=$((lost + 1)); echo "trial $trial: $complete complete < $expected"; fi
  [ "$complete" -gt 0 ] && loaded=$((loaded + 1))
  rm -rf "$dir"
done
echo "kill test: $TRIALS trials, $loaded resumed from a complete checkpoint, $corrupt corrupt loads, $lost lost checkpoints"
[ $corrupt -eq 0 ] && [ $lost -eq 0 ]
