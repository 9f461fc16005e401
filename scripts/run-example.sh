#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job: Fashion-MNIST on 2 CPU processes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Only the launcher and the example: the tests, benchmarks and fuzzers wait for run-tests.sh.
bash "$ROOT/scripts/setup.sh" accelerate_cli fashion_mnist
exec "$ROOT/build/bin/accelerate-cpp" launch --num_processes 2 --cpu "$ROOT/build/bin/fashion_mnist" "$@"
