#!/usr/bin/env bash
# The GPU check, for a session lent a device machine (its image has torch 2.11 in python3, cmake, ninja, nvcc,
# but not our Debian dev packages). Prepare here, once:
#   echo /.gpu-debs/ >> .git/info/exclude; mkdir -p .gpu-debs && (cd .gpu-debs && apt-get download \
#     libgloo-dev libcli11-dev libyaml-cpp-dev libyaml-cpp0.7 libgtest-dev googletest nlohmann-json3-dev libboost1.74-dev \
#     dataset-fashion-mnist)
#   echo /.gpu-data/ >> .git/info/exclude; mkdir -p .gpu-data && cp -r ~/.cache/accelerate-cpp/data/shakespeare .gpu-data/
#   echo /.gpu-wheels/ >> .git/info/exclude; pip download accelerate==1.15.0 -d .gpu-wheels   (for the Python reference)
# then run this script there with carry [".gpu-debs", ".gpu-data", ".gpu-wheels"]. It builds against the machine's torch, then runs, each step
# recorded and the next one run even if it fails: the collectives and the checkpoint tests on the GPU (a world of
# one: NCCL refuses two ranks on one GPU; the checkpoint tests include fp16 with a GradScaler resumed bitwise),
# the CPU suite, the distributed path on one GPU (a process group for a world of one: NCCL, the Reducer, CUDA
# collectives, debug mode; two ranks sharing the GPU over Gloo; two NCCL ranks on one GPU refused), the Fashion-MNIST
# example on the GPU in no/bf16/fp16 (one epoch each, accuracy and time),
# plus an fp16 run interrupted by a checkpoint and resumed, one with every tracker and the debug state report,
# `accelerate-cpp env` and `accelerate-cpp test` on the GPU, ending with a pass/fail table. Output goes to
# $OUT/gpu-check.log when OUT is set.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${OUT:-/tmp}/gpu-check.log"
exec > >(tee "$LOG") 2>&1
RESULTS=()
FAILED=()
LOGS=/tmp/accelerate-gpu-logs
mkdir -p "$LOGS"
step() {  # step NAME COMMAND...: runs it, timed, output kept in $LOGS/NAME.log; a failure is recorded, not fatal
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS rc
  "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then RESULTS+=("$name|pass|$((SECONDS - t0)) s"); else RESULTS+=("$name|FAIL (rc $rc)|$((SECONDS - t0)) s"); FAILED+=("$name"); fi
}
expect_refused() {  # expect_refused PATTERN COMMAND...: the command must fail and print PATTERN
  local pattern=$1; shift
  ! "$@" > /tmp/refused.log 2>&1 && cat /tmp/refused.log && grep -q "$pattern" /tmp/refused.log
}
no_destroy_warning() {  # no log of an NCCL run holds torch's warning about a process group never destroyed
  ! grep -l "destroy_process_group() was not called" "$LOGS"/*.log
}
DEPS=/tmp/accelerate-gpu-deps
mkdir -p "$DEPS"
for deb in "$ROOT"/.gpu-debs/*.deb; do dpkg -x "$deb" "$DEPS"; done
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv
BUILD=/tmp/accelerate-gpu-build
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DACCELERATE_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$DEPS/usr" \
  -DACCELERATE_GLOO_INCLUDE_DIR="$DEPS/usr/include" -DACCELERATE_BOOST_INCLUDE_DIR="$DEPS/usr/include" -DCMAKE_CXX_FLAGS="-isystem $DEPS/usr/include" || exit 1
step build cmake --build "$BUILD" -j 16 --target accelerate_cli accelerate_check collectives_worker checkpoint_worker zero_worker zero3_worker core_unit_tests fashion_mnist gpt
BIN=$BUILD/bin
L="$BIN/accelerate-cpp launch"
DATA="$DEPS/usr/share/datasets/fashion-mnist"
FM=(--data_dir "$DATA" --cache_dir /tmp/fmnist)
# A world of one, as before.
step collectives_cuda env ACCELERATE_TEST_DEVICE=cuda $L --num_processes 1 "$BIN/collectives_worker"
step checkpoints_cuda env ACCELERATE_TEST_DEVICE=cuda $L --num_processes 1 "$BIN/checkpoint_worker"
# The distributed path on one GPU (issue 11): a process group for a world of one, so NCCL, the Reducer, the CUDA
# collectives and debug mode (an unseeded shuffled loader, the example's reduce of a CPU double) run.
step nccl_group_of_one_collectives env ACCELERATE_TEST_DEVICE=cuda ACCELERATE_CPP_FORCE_PROCESS_GROUP=1 \
  $L --num_processes 1 "$BIN/collectives_worker"
step nccl_group_of_one_ddp_debug env ACCELERATE_CPP_FORCE_PROCESS_GROUP=1 $L --num_processes 1 --debug \
  "$BIN/fashion_mnist" --epochs 1 --limit 6000 "${FM[@]}"
# Two ranks on one GPU over Gloo with CUDA tensors: real two-rank DDP, uneven CUDA gathers, per-rank scaler and
# CUDA RNG files, resume.
step gloo_two_ranks_one_gpu_collectives env ACCELERATE_TEST_DEVICE=cuda ACCELERATE_TEST_BACKEND=gloo \
  $L --num_processes 2 "$BIN/collectives_worker"
step gloo_two_ranks_one_gpu_checkpoints env ACCELERATE_TEST_DEVICE=cuda ACCELERATE_TEST_BACKEND=gloo \
  $L --num_processes 2 "$BIN/checkpoint_worker"
# Issue 14: ZeRO stages 1 and 2 with CUDA tensors (two ranks on one GPU over Gloo): equivalence with stage 0,
# shard sizes, an fp16 overflow on one shard, checkpoints across stages.
step zero_two_ranks_one_gpu env ACCELERATE_TEST_DEVICE=cuda ACCELERATE_TEST_BACKEND=gloo \
  $L --num_processes 2 "$BIN/zero_worker"
# Issue 25: ZeRO stage 3 with CUDA tensors (two ranks on one GPU over Gloo): equivalence with stage 0 (with
# accumulation, checkpointing, without prefetch), bytes per rank, fp16 overflow, checkpoints, free_memory.
step zero3_two_ranks_one_gpu env ACCELERATE_TEST_DEVICE=cuda ACCELERATE_TEST_BACKEND=gloo \
  $L --num_processes 2 "$BIN/zero3_worker"
# Two NCCL ranks on one GPU: a clear refusal, not a raw NCCL error.
step nccl_two_ranks_one_gpu_refused expect_refused "NCCL cannot run two ranks on one" \
  $L --num_processes 2 "$BIN/fashion_mnist" --epochs 1 --limit 600 "${FM[@]}"
step no_destroy_process_group_warning no_destroy_warning
step env "$BIN/accelerate-cpp" env
step accelerate_test_cuda "$BIN/accelerate-cpp" test --num_processes 1
step collectives_cpu_2proc $L --num_processes 2 --cpu "$BIN/collectives_worker"
step unit_tests "$BIN/core_unit_tests"
for precision in no bf16 fp16; do
  step "fashion_mnist_$precision" "$BIN/fashion_mnist" --epochs 1 --mixed_precision "$precision" "${FM[@]}"
done
# fp16 with a checkpoint each epoch, then resumed from the newest: the scaler's state travels through the GPU.
rm -rf /tmp/fmnist-ckpt
step fashion_mnist_fp16_checkpoint "$BIN/fashion_mnist" --epochs 1 --mixed_precision fp16 "${FM[@]}" \
  --output_dir /tmp/fmnist-ckpt --checkpointing_steps epoch
step fashion_mnist_fp16_resume "$BIN/fashion_mnist" --epochs 2 --mixed_precision fp16 "${FM[@]}" \
  --output_dir /tmp/fmnist-ckpt --resume_from_checkpoint latest
step fashion_mnist_fp16_tracking_debug "$BIN/fashion_mnist" --epochs 1 --mixed_precision fp16 "${FM[@]}" \
  --output_dir /tmp/fmnist-track --with_tracking --report_to all --debug
ls -la /tmp/fmnist-track/fashion_mnist || true
# Issue 13: GPT-2 124M (12 layers, 12 heads, width 768, context 1024; byte vocabulary) in bf16, tokens/s and MFU,
# against the same loop in Python with HF Accelerate (bench/gpt_reference.py), alternating; with and without
# pin_memory (batch k+1 copied on a side stream during step k); fp16 with the GradScaler.
python3 -c "import accelerate" 2>/dev/null || pip install --no-index --find-links "$ROOT/.gpu-wheels" accelerate
SHAKESPEARE="$ROOT/.gpu-data/shakespeare"
GPT2=(--n_layer 12 --n_head 12 --n_embd 768 --block_size 1024 --batch_size 16 --max_steps 60 --num_workers 2
      --warmup_steps 10 --data_dir "$SHAKESPEARE")
gpt_rate() {  # gpt_rate LOG: tokens/s and MFU (llm.c: 6N + 6LCT FLOPs per token; H200 dense bf16 989 TFLOPS)
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
seconds = float(re.findall(r"train_seconds=([0-9.]+)", text)[-1])
n = int(re.search(r"tensors, (\d+) parameters", text).group(1))
tokens = 60 * 16 * 1024
per_token = 6 * n + 6 * 12 * 768 * 1024
rate = tokens / seconds
print(f"tokens_per_s={rate:.0f} mfu={rate * per_token / 989e12:.3f} params={n}")
PY
}
for round in 1 2; do
  for pin in "" --pin_memory; do
    step "gpt2_124m_bf16_cpp${pin:+_pinned}_$round" "$BIN/gpt" "${GPT2[@]}" $pin --mixed_precision bf16 \
      --eval_interval 1000000 --eval_batches 1 --sample_tokens 0
    gpt_rate "$LOGS/gpt2_124m_bf16_cpp${pin:+_pinned}_$round.log"
    step "gpt2_124m_bf16_python${pin:+_pinned}_$round" python3 "$ROOT/bench/gpt_reference.py" --device cuda \
      --mixed_precision bf16 "${GPT2[@]}" $pin
    gpt_rate "$LOGS/gpt2_124m_bf16_python${pin:+_pinned}_$round.log"
  done
done
# Issue 14: activation checkpointing on GPT-2 124M in bf16: peak CUDA memory (the memory line) and tokens/s; the
# GPT job at ZeRO stages 0, 2 and 3 where there are two GPUs (NCCL needs one GPU per rank).
for ckpt in "" --gradient_checkpointing; do
  step "gpt2_124m_bf16${ckpt:+_checkpointed}" "$BIN/gpt" "${GPT2[@]}" $ckpt --mixed_precision bf16 \
    --eval_interval 1000000 --eval_batches 1 --sample_tokens 0
  gpt_rate "$LOGS/gpt2_124m_bf16${ckpt:+_checkpointed}.log"
  grep -o "memory: .*" "$LOGS/gpt2_124m_bf16${ckpt:+_checkpointed}.log" || true
done
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  for stage in 0 2 3; do
    step "gpt2_124m_bf16_2gpu_zero$stage" $L --num_processes 2 "$BIN/gpt" "${GPT2[@]}" --mixed_precision bf16 \
      --zero_stage "$stage" --eval_interval 1000000 --eval_batches 1 --sample_tokens 0
    grep -o "memory: .*" "$LOGS/gpt2_124m_bf16_2gpu_zero$stage.log" || true
    gpt_rate "$LOGS/gpt2_124m_bf16_2gpu_zero$stage.log"
  done
fi
step gpt_fp16_scaler "$BIN/gpt" --max_steps 200 --mixed_precision fp16 --data_dir "$SHAKESPEARE" --sample_tokens 50 \
  --output_dir /tmp/gpt-fp16 --checkpointing_steps 100
step gpt_fp16_resume "$BIN/gpt" --max_steps 300 --mixed_precision fp16 --data_dir "$SHAKESPEARE" --sample_tokens 0 \
  --output_dir /tmp/gpt-fp16 --resume_from_checkpoint latest
echo
echo "| check | result | time |"
echo "|---|---|---|"
for r in "${RESULTS[@]}"; do IFS='|' read -r name result time <<<"$r"; echo "| $name | $result | $time |"; done
if ((${#FAILED[@]})); then echo "gpu-check: FAILED: ${FAILED[*]}"; exit 1; fi
echo "gpu-check: all passed"
