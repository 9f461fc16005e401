#!/usr/bin/env bash
# The GPT example end to end in seconds: 2 CPU processes on a tiny model and a small text train to a validation
# loss well below chance (ln 256 = 5.55), save checkpoints and a transformers folder; a run resumed from the
# mid-run checkpoint, and a run with activation checkpointing, end with the same validation loss as the
# uninterrupted one (to the printed digits).
# Usage: gpt_smoke.sh ACCELERATE_CPP GPT PYTHON
set -euo pipefail
cli="$1" gpt="$2" python="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$(dirname "$0")/gpt_data.sh" "$python" "$tmp/data"
flags=(--data_dir "$tmp/data" --n_layer 1 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --max_steps 60
       --eval_interval 20 --eval_batches 2 --log_interval 10 --lr 3e-3 --warmup_steps 5 --sample_tokens 20)
run() { timeout 120 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" "$@" 2>&1; }
fail() { echo "gpt_smoke: FAILED: $*"; echo "$out"; exit 1; }

out=$(run --output_dir "$tmp/a" --checkpointing_steps 30) || fail "the run failed"
grep -q "step=60 loss=" <<<"$out" || fail "no step=60 line"
for r in 0 1; do
  grep -qE "memory: rank=$r parameter_bytes=[1-9][0-9]* optimizer_state_bytes=[1-9][0-9]* gradient_bytes=[1-9][0-9]* peak_bytes=[1-9]" <<<"$out" ||
    fail "no memory line of rank $r"
done
val=$(grep -o "val_loss=[0-9.]*" <<<"$out" | tail -1 | cut -d= -f2)
[ -n "$val" ] || fail "no val_loss line"
"$python" -c "import sys; sys.exit(0 if float('$val') < 3.0 else 1)" || fail "val_loss $val is not below 3.0"
[ -f "$tmp/a/model/config.json" ] && [ -f "$tmp/a/model/model.safetensors" ] || fail "no transformers folder"
[ -f "$tmp/a/checkpoints/checkpoint_0/COMPLETE" ] || fail "no checkpoint at step 30"

# Resume from step 30 in another folder: the same end, to the printed digits.
mkdir -p "$tmp/b/checkpoints" && cp -r "$tmp/a/checkpoints/checkpoint_0" "$tmp/b/checkpoints/"
out=$(run --output_dir "$tmp/b" --resume_from_checkpoint latest) || fail "the resumed run failed"
grep -q "at step 30" <<<"$out" || fail "did not resume at step 30"
resumed=$(grep -o "val_loss=[0-9.]*" <<<"$out" | tail -1 | cut -d= -f2)
[ "$resumed" = "$val" ] || fail "resumed val_loss $resumed differs from the uninterrupted $val"

# Activation checkpointing recomputes each block in backward: the same training, to the printed digits.
out=$(run --gradient_checkpointing) || fail "the run with --gradient_checkpointing failed"
checkpointed=$(grep -o "val_loss=[0-9.]*" <<<"$out" | tail -1 | cut -d= -f2)
[ "$checkpointed" = "$val" ] || fail "val_loss with --gradient_checkpointing $checkpointed differs from $val"
echo "gpt_smoke: passed (val_loss $val, resumed run and --gradient_checkpointing identical)"
