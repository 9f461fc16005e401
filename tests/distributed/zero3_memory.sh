#!/usr/bin/env bash
# ZeRO stage 3 trains a model that does not fit one process: a GPT of 16 blocks of width 1024 (202M parameters,
# 808 MB of fp32 weights; with gradients and AdamW's two moments 3.2 GB per process at stage 0) is fine-tuned from a
# transformers folder on 2 CPU processes under a per-process memory limit (RLIMIT_DATA, which counts the heap and
# private mappings) that stage 0 cannot meet: stage 0 runs out of memory, stage 3 (its blocks built without weights
# through init_empty_weights, each process loading only its shards from the folder) trains and reports half the
# parameter, gradient and optimizer bytes. Peaks measured on a 2-core AMD EPYC: VmData 3.5 GB at stage 3, 4.8 GB at
# stage 0; the limit is between them.
# Usage: zero3_memory.sh ACCELERATE_CPP GPT PYTHON
set -euo pipefail
cli="$1" gpt="$2" python="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
limit=$((4100 * 1024 * 1024))
fail() { echo "zero3_memory: FAILED: $*"; echo "$out"; exit 1; }
"$(dirname "$0")/gpt_data.sh" "$python" "$tmp/data"
# The final validation reads all of val.bin, and at stage 3 every forward gathers the whole model: keep it short.
head -c 128 "$tmp/data/val.bin" > "$tmp/val.bin" && mv "$tmp/val.bin" "$tmp/data/val.bin"
flags=(--data_dir "$tmp/data" --batch_size 1 --log_interval 1 --eval_interval 1000 --eval_batches 1 --sample_tokens 0)
out=$(timeout 300 "$gpt" "${flags[@]}" --n_layer 16 --n_head 8 --n_embd 1024 --block_size 32 --max_steps 1 \
      --output_dir "$tmp/pretrained" 2>&1) || fail "making the pretrained folder failed"
[ -f "$tmp/pretrained/model/model.safetensors" ] || fail "no pretrained folder"
run() {
  timeout 300 prlimit --data="$limit:$limit" "$cli" launch --num_processes 2 --cpu --timeout 120 "$gpt" "${flags[@]}" \
    --init_from "$tmp/pretrained/model" --zero_stage "$@" 2>&1
}
if out=$(run 0 --max_steps 2); then fail "stage 0 trained under the limit of $limit bytes: the limit does not test anything"; fi
grep -qiE "can't allocate memory|cannot allocate memory|bad_alloc" <<<"$out" || fail "stage 0 failed, but not for memory"
# Stage 3 trains and checkpoints under the limit: each process writes its own shards (the main process could not
# hold the whole model and AdamW state on top of its own), and the run resumes from them.
out=$(run 3 --max_steps 2 --output_dir "$tmp/run" --checkpointing_steps 2) ||
  fail "stage 3 did not train and save under the limit of $limit bytes"
grep -q "step=2 loss=" <<<"$out" || fail "stage 3 logged no step 2"
ckpt="$tmp/run/checkpoints/checkpoint_0"
for f in model.rank_0 model.rank_1 optimizer.rank_0 optimizer.rank_1; do
  [ -f "$ckpt/$f.safetensors" ] || fail "the stage-3 checkpoint has no $f.safetensors"
done
resumed=$(run 3 --max_steps 3 --output_dir "$tmp/run" --resume_from_checkpoint latest) ||
  { out="$resumed"; fail "stage 3 did not resume under the limit"; }
grep -q "resumed from" <<<"$resumed" && grep -q "step=3 loss=" <<<"$resumed" || { out="$resumed"; fail "no resumed step 3"; }
for r in 0 1; do
  line=$(grep -o "memory: rank=$r .*" <<<"$out") || fail "no memory line of rank $r"
  params=$(grep -o "parameter_bytes=[0-9]*" <<<"$line" | cut -d= -f2)
  # Half of the 807,346,176 bytes of weights (the blocks' shards, the embeddings whole), give or take padding.
  [ "$params" -lt 410000000 ] || fail "rank $r holds $params parameter bytes at stage 3"
done
echo "zero3_memory: passed (stage 0 ran out of memory under RLIMIT_DATA $limit bytes; stage 3 trained, $params parameter bytes per process)"
