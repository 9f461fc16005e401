#!/usr/bin/env bash
# The GPU check, for a session lent a device machine (its image has torch 2.11 in python3, cmake, ninja, nvcc,
# but not our Debian dev packages). Prepare here, once:
#   echo /.gpu-debs/ >> .git/info/exclude; mkdir -p .gpu-debs && (cd .gpu-debs && apt-get download \
#     libgloo-dev libcli11-dev libyaml-cpp-dev libyaml-cpp0.7 libgtest-dev googletest nlohmann-json3-dev libboost1.74-dev \
#     dataset-fashion-mnist)
# then run this script there with carry [".gpu-debs"]. It builds against the machine's torch, then runs, each step
# recorded and the next one run even if it fails: the collectives and the checkpoint tests on the GPU (a world of
# one: NCCL refuses two ranks on one GPU; the checkpoint tests include fp16 with a GradScaler resumed bitwise),
# the CPU suite, and the Fashion-MNIST example on the GPU in no/bf16/fp16 (one epoch each, accuracy and time),
# plus an fp16 run interrupted by a checkpoint and resumed, one with every tracker and the debug state report,
# `accelerate-cpp env` and `accelerate-cpp test` on the GPU. Output goes to $OUT/gpu-check.log when OUT is set.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${OUT:-/tmp}/gpu-check.log"
exec > >(tee "$LOG") 2>&1
FAILED=()
step() {  # step NAME COMMAND...: runs it, timed, and records a failure without stopping
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then echo "=== $name: ok ($((SECONDS - t0)) s)"; else echo "=== $name: FAILED ($((SECONDS - t0)) s)"; FAILED+=("$name"); fi
}
DEPS=/tmp/accelerate-gpu-deps
mkdir -p "$DEPS"
for deb in "$ROOT"/.gpu-debs/*.deb; do dpkg -x "$deb" "$DEPS"; done
nvidia-smi --query-gpu=name,driver_version --format=csv
BUILD=/tmp/accelerate-gpu-build
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DACCELERATE_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$DEPS/usr" \
  -DACCELERATE_GLOO_INCLUDE_DIR="$DEPS/usr/include" -DACCELERATE_BOOST_INCLUDE_DIR="$DEPS/usr/include" -DCMAKE_CXX_FLAGS="-isystem $DEPS/usr/include" || exit 1
step build cmake --build "$BUILD" -j 16 --target accelerate_cli accelerate_check collectives_worker checkpoint_worker core_unit_tests fashion_mnist
BIN=$BUILD/bin
step collectives_cuda env ACCELERATE_TEST_DEVICE=cuda "$BIN/accelerate-cpp" launch --num_processes 1 "$BIN/collectives_worker"
step checkpoints_cuda env ACCELERATE_TEST_DEVICE=cuda "$BIN/accelerate-cpp" launch --num_processes 1 "$BIN/checkpoint_worker"
step env "$BIN/accelerate-cpp" env
step accelerate_test_cuda "$BIN/accelerate-cpp" test --num_processes 1
step collectives_cpu_2proc "$BIN/accelerate-cpp" launch --num_processes 2 --cpu "$BIN/collectives_worker"
step unit_tests "$BIN/core_unit_tests"
DATA="$DEPS/usr/share/datasets/fashion-mnist"
for precision in no bf16 fp16; do
  step "fashion_mnist_$precision" "$BIN/fashion_mnist" --epochs 1 --mixed_precision "$precision" --data_dir "$DATA" --cache_dir /tmp/fmnist
done
# fp16 with a checkpoint each epoch, then resumed from the newest: the scaler's state travels through the GPU.
rm -rf /tmp/fmnist-ckpt
step fashion_mnist_fp16_checkpoint "$BIN/fashion_mnist" --epochs 1 --mixed_precision fp16 --data_dir "$DATA" \
  --cache_dir /tmp/fmnist --output_dir /tmp/fmnist-ckpt --checkpointing_steps epoch
step fashion_mnist_fp16_resume "$BIN/fashion_mnist" --epochs 2 --mixed_precision fp16 --data_dir "$DATA" \
  --cache_dir /tmp/fmnist --output_dir /tmp/fmnist-ckpt --resume_from_checkpoint latest
step fashion_mnist_fp16_tracking_debug "$BIN/fashion_mnist" --epochs 1 --mixed_precision fp16 --data_dir "$DATA" \
  --cache_dir /tmp/fmnist --output_dir /tmp/fmnist-track --with_tracking --report_to all --debug
ls -la /tmp/fmnist-track/fashion_mnist || true
if ((${#FAILED[@]})); then echo "gpu-check: FAILED: ${FAILED[*]}"; exit 1; fi
echo "gpu-check: all passed"
