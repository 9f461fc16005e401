#!/usr/bin/env bash
# Issue 11, item 5: save_state into an output folder that the machines do not share. Two "machines" on this host,
# one process each; machine 1 runs in a mount namespace where another folder is bind-mounted over the output
# folder, as a node-local disk. Machine 0 must hold a complete checkpoint, machine 1 its rank's random states, put
# in place and marked NODE_LOCAL (no .tmp left, never COMPLETE), rotated like machine 0's. Then, with machine 0's
# checkpoint copied over and a stale newer checkpoint left on machine 1, `--resume_from_checkpoint latest` must
# resume both machines from rank 0's choice. Exits 77 (skipped) where mount namespaces cannot be made.
# Usage: nodelocal_checkpoint.sh ACCELERATE_CPP FASHION_MNIST
set -uo pipefail
cli="$1" example="$2"
if ! unshare -m true 2>/dev/null; then
  echo "nodelocal_checkpoint: SKIPPED: mount namespaces cannot be created here (needs root)"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/out" "$dir/machine1"
port=$((20000 + $$ % 20000))
fail() { echo "nodelocal_checkpoint: FAILED: $*"; exit 1; }

run_both() {  # run_both EXAMPLE_ARGS...: machine 0 sees $dir/out, machine 1 sees $dir/machine1 there
  local launch=("$cli" launch --cpu --num_processes 2 --num_machines 2 --main_process_ip 127.0.0.1
                --main_process_port "$port" --timeout 60)
  local args=(--limit 256 --batch_size 32 --output_dir "$dir/out" --checkpointing_steps epoch --total_limit 1 "$@")
  timeout -k 5 150 "${launch[@]}" --machine_rank 0 "$example" "${args[@]}" >"$dir/machine0.log" 2>&1 &
  local p0=$!
  timeout -k 5 150 unshare -m sh -c 'mount --bind "$0/machine1" "$0/out" || exit 90; exec "$@"' "$dir" \
    "${launch[@]}" --machine_rank 1 "$example" "${args[@]}" >"$dir/machine1.log" 2>&1
  local rc1=$?
  wait $p0
  local rc0=$?
  for m in 0 1; do echo "--- machine $m"; tail -4 "$dir/machine$m.log"; done
  echo "--- folders"; (cd "$dir" && find out machine1 -mindepth 2 | sort)
  [ "$rc0" = 0 ] && [ "$rc1" = 0 ] || fail "machine 0 exited $rc0, machine 1 exited $rc1"
}

run_both --epochs 2
ckpt="$dir/out/checkpoints/checkpoint_1" mine="$dir/machine1/checkpoints"
for f in COMPLETE model.safetensors metadata.json random_states_0.safetensors; do
  [ -e "$ckpt/$f" ] || fail "machine 0's checkpoint lacks $f"
done
[ -e "$mine/checkpoint_1/random_states_1.safetensors" ] || fail "machine 1's random states are not in place"
[ -e "$mine/checkpoint_1/NODE_LOCAL" ] || fail "machine 1's folder is not marked NODE_LOCAL"
[ ! -e "$mine/checkpoint_1/COMPLETE" ] || fail "machine 1's folder claims to be COMPLETE"
[ ! -e "$mine/checkpoint_0" ] && [ ! -e "$dir/out/checkpoints/checkpoint_0" ] || fail "checkpoint_0 was not rotated away"
ls "$mine" | grep -q "\.tmp" && fail "machine 1 kept a .tmp folder"

# Resume: machine 0's checkpoint copied to machine 1 (its own files stay), and a stale newer one left there.
cp -rn "$ckpt/." "$mine/checkpoint_1/"
cp -r "$mine/checkpoint_1" "$mine/checkpoint_7"
run_both --epochs 3 --resume_from_checkpoint latest
for m in 0 1; do
  grep -q "resumed from .*/checkpoints/checkpoint_1 " "$dir/machine$m.log" || fail "machine $m did not resume from rank 0's choice"
done
echo "nodelocal_checkpoint: passed"
