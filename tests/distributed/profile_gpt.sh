#!/usr/bin/env bash
# Issue 26, item 3: `--profile` on 2 processes writes one Chrome/Perfetto trace per rank (LibTorch's Kineto
# profiler), in which LibTorch's operators and the library's named ranges show where a step goes: forward, backward,
# the gradients' all-reduce (DDP, stage 0) or reduce-scatter (ZeRO stage 2), the optimizer step and the wait for the
# next batch. Without --profile no trace is written. The fashion-mnist example's --profile writes the same.
# Usage: profile_gpt.sh ACCELERATE_CPP GPT FASHION_MNIST PYTHON
set -euo pipefail
cli="$1" gpt="$2" mnist="$3" python="$4"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "profile_gpt: FAILED: $*"; echo "$out"; exit 1; }
"$(dirname "$0")/gpt_data.sh" "$python" "$tmp/data"
flags=(--data_dir "$tmp/data" --n_layer 1 --n_head 2 --n_embd 32 --block_size 32 --max_steps 6 --batch_size 4
       --eval_interval 100 --eval_batches 1 --sample_tokens 0)
# check DIR NAME...: each rank's trace is valid JSON with aten operators and every named event
check() {
  local dir="$1"; shift
  "$python" - "$dir" "$@" <<'PY' || fail "traces in $dir"
import json, sys
folder, wanted = sys.argv[1], sys.argv[2:]
for rank in (0, 1):
    events = json.load(open(f"{folder}/profile_{rank}.json"))["traceEvents"]
    names = {e.get("name", "") for e in events if e.get("ph") == "X"}
    aten = sum(1 for n in names if n.startswith("aten::"))
    missing = [w for w in wanted if not any(w in n for n in names)]
    if aten < 10 or missing:
        sys.exit(f"rank {rank}: {aten} aten operators; missing {missing}")
    print(f"rank {rank}: {len(events)} events, {aten} aten operator names, all of {wanted}")
PY
}
out=$(timeout 120 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --output_dir "$tmp/ddp" --profile 2>&1) ||
  fail "the profiled run failed"
check "$tmp/ddp/profile" accelerate::forward accelerate::backward allreduce accelerate::optimizer_step \
  accelerate::next_batch
out=$(timeout 120 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --output_dir "$tmp/zero" --profile \
      --zero_stage 2 2>&1) || fail "the profiled ZeRO run failed"
check "$tmp/zero/profile" accelerate::backward accelerate::reduce_scatter accelerate::all_gather
out=$(timeout 120 "$cli" launch --num_processes 2 --cpu "$gpt" "${flags[@]}" --output_dir "$tmp/off" 2>&1) ||
  fail "the run without --profile failed"
[ ! -e "$tmp/off/profile" ] || fail "a trace was written without --profile"
out=$(timeout 120 "$cli" launch --num_processes 2 --cpu "$mnist" --limit 640 --batch_size 32 --epochs 1 \
      --output_dir "$tmp/mnist" --profile 2>&1) || fail "the profiled fashion-mnist run failed"
check "$tmp/mnist/profile" accelerate::forward accelerate::backward accelerate::optimizer_step
echo "profile_gpt: passed (one trace per rank with LibTorch's operators and the library's ranges)"
