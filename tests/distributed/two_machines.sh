#!/usr/bin/env bash
# Two launchers as two machines on loopback (--num_machines 2 --machine_rank 0/1, one process each) train the
# Fashion-MNIST example to the end: one rendezvous, one test_accuracy line (machine 0's main process), both
# launchers exit 0; a checkpoint saved at the end of the epoch holds both ranks' random states.
# Usage: two_machines.sh BIN_DIR
set -euo pipefail
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# A free port for machine 0's rendezvous (with several machines the launcher's default is the fixed 29500).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

machine() {  # machine RANK
  timeout -k 5 180 "$bin/accelerate-cpp" launch --cpu --num_processes 2 --num_machines 2 --machine_rank "$1" \
    --main_process_ip 127.0.0.1 --main_process_port "$port" --timeout 60 "$bin/fashion_mnist" --limit 3000 \
    --epochs 1 --batch_size 32 --output_dir "$dir/out$1" --checkpointing_steps epoch >"$dir/machine$1.log" 2>&1
}
machine 0 & p0=$!
machine 1 & p1=$!
rc0=0 rc1=0
wait $p0 || rc0=$?
wait $p1 || rc1=$?
fail() {
  for m in 0 1; do echo "--- machine $m"; cat "$dir/machine$m.log"; done
  echo "two_machines: FAILED: $*"
  exit 1
}
[ "$rc0" = 0 ] && [ "$rc1" = 0 ] || fail "machine 0 exited $rc0, machine 1 exited $rc1"
[ "$(grep -c "test_accuracy=" "$dir/machine0.log")" = 1 ] || fail "machine 0 has no test_accuracy line"
grep -q "test_accuracy=" "$dir/machine1.log" && fail "machine 1 printed the main process's result"
grep -q "epoch 0 train_loss" "$dir/machine0.log" || fail "no epoch line"
ckpt="$dir/out0/checkpoints/checkpoint_0"
[ -e "$ckpt/COMPLETE" ] || fail "no complete checkpoint on machine 0"
# Each machine writes its own rank's random states into its own output folder (they share no filesystem here).
[ -e "$dir/out1/checkpoints/checkpoint_0/random_states_1.safetensors" ] || \
  [ -e "$ckpt/random_states_1.safetensors" ] || fail "rank 1's random states are missing"
echo "two_machines: passed"
