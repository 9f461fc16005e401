#!/usr/bin/env bash
# Issue 11, item 5: save_state into an output folder that the machines do not share. Two "machines" on this host,
# one process each; machine 1 runs in a mount namespace with a tmpfs over the output folder, so it sees a
# different filesystem there, as a node-local disk. Machine 0 must hold a complete checkpoint; machine 1 its
# rank's random states, put in place and marked NODE_LOCAL (no .tmp left, never COMPLETE). Exits 77 (skipped)
# where mount namespaces cannot be made.
# Usage: nodelocal_checkpoint.sh ACCELERATE_CPP FASHION_MNIST
set -uo pipefail
cli="$1" example="$2"
if ! unshare -m true 2>/dev/null; then
  echo "nodelocal_checkpoint: SKIPPED: mount namespaces cannot be created here (needs root)"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/out"
port=$((20000 + $$ % 20000))
launch=("$cli" launch --cpu --num_processes 2 --num_machines 2 --main_process_ip 127.0.0.1 --main_process_port "$port"
        --timeout 60)
args=(--limit 256 --epochs 1 --batch_size 32 --output_dir "$dir/out" --checkpointing_steps epoch)
timeout -k 5 150 "${launch[@]}" --machine_rank 0 "$example" "${args[@]}" >"$dir/machine0.log" 2>&1 &
p0=$!
timeout -k 5 150 unshare -m sh -c 'mount -t tmpfs tmpfs "$1/out" || exit 90; shift; "$@"; rc=$?;
  find "$0/out" -mindepth 2 | sort > "$0/machine1.files"; exit $rc' "$dir" "$dir" "${launch[@]}" --machine_rank 1 \
  "$example" "${args[@]}" >"$dir/machine1.log" 2>&1
rc1=$?
wait $p0
rc0=$?
for m in 0 1; do echo "--- machine $m"; tail -5 "$dir/machine$m.log"; done
echo "--- machine 0's folder"; find "$dir/out" -mindepth 2 | sort | sed "s|$dir/||"
echo "--- machine 1's folder"; sed "s|$dir/||" "$dir/machine1.files" 2>/dev/null
fail() { echo "nodelocal_checkpoint: FAILED: $*"; exit 1; }
[ "$rc0" = 0 ] && [ "$rc1" = 0 ] || fail "machine 0 exited $rc0, machine 1 exited $rc1"
ckpt="$dir/out/checkpoints/checkpoint_0"
for f in COMPLETE model.safetensors metadata.json random_states_0.safetensors; do
  [ -e "$ckpt/$f" ] || fail "machine 0's checkpoint lacks $f"
done
grep -q "out/checkpoints/checkpoint_0/random_states_1.safetensors" "$dir/machine1.files" || fail "machine 1's random states are not in place"
grep -q "out/checkpoints/checkpoint_0/NODE_LOCAL" "$dir/machine1.files" || fail "machine 1's folder is not marked NODE_LOCAL"
! grep -q "\.tmp\|COMPLETE" "$dir/machine1.files" || fail "machine 1's folder holds a .tmp or claims to be COMPLETE"
echo "nodelocal_checkpoint: passed"
