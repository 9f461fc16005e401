#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job: Fashion-MNIST on 2 CPU processes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/build/bin/accelerate-cpp" launch --num_processes 2 --cpu "$ROOT/build/bin/fashion_mnist" "$@"
