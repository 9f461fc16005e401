#!/usr/bin/env bash
# The GPU check, for a session lent a device machine (its image has torch 2.11 in python3, cmake, ninja, nvcc,
# but not our Debian dev packages). Prepare here, once:
#   echo /.gpu-debs/ >> .git/info/exclude; mkdir -p .gpu-debs && (cd .gpu-debs && apt-get download \
#     libgloo-dev libcli11-dev libyaml-cpp-dev libyaml-cpp0.7 libgtest-dev googletest dataset-fashion-mnist)
# then run this script there with carry [".gpu-debs"]. It builds against the machine's torch, checks that CUDA
# and NCCL are picked, runs the collectives test on the GPU (a world of one: NCCL refuses two ranks on one
# GPU) plus the CPU suite, and trains the Fashion-MNIST example on the GPU in bf16 and fp16 (GradScaler), one
# epoch each, printing accuracy and time. Output goes to $OUT/gpu-check.log when OUT is set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${OUT:-/tmp}/gpu-check.log"
exec > >(tee "$LOG") 2>&1
DEPS=/tmp/accelerate-gpu-deps
mkdir -p "$DEPS"
for deb in "$ROOT"/.gpu-debs/*.deb; do dpkg -x "$deb" "$DEPS"; done
nvidia-smi --query-gpu=name,driver_version --format=csv
cmake -S "$ROOT" -B /tmp/accelerate-gpu-build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DACCELERATE_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$DEPS/usr" \
  -DACCELERATE_GLOO_INCLUDE_DIR="$DEPS/usr/include" -DCMAKE_CXX_FLAGS="-isystem $DEPS/usr/include"
cmake --build /tmp/accelerate-gpu-build -j 16 --target accelerate_cli collectives_worker core_unit_tests collectives_demo fashion_mnist
BIN=/tmp/accelerate-gpu-build/bin
ACCELERATE_TEST_DEVICE=cuda "$BIN/accelerate-cpp" launch --num_processes 1 "$BIN/collectives_worker"
"$BIN/accelerate-cpp" launch --num_processes 2 --cpu "$BIN/collectives_worker"
"$BIN/core_unit_tests"
DATA="$DEPS/usr/share/datasets/fashion-mnist"
for precision in no bf16 fp16; do
  echo "fashion_mnist, mixed_precision $precision, on the GPU:"
  time "$BIN/fashion_mnist" --epochs 1 --mixed_precision "$precision" --data_dir "$DATA" --cache_dir /tmp/fmnist
done
echo "gpu-check: all passed"
