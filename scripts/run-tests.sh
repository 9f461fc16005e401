#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test. Each multi-process test has a deadline.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT/build"
# The tests must not pick up this machine's own `accelerate-cpp config` file.
export ACCELERATE_CPP_CONFIG_FILE="$ROOT/build/tests-have-no-default-config.yaml"
exec ctest --output-on-failure -j 2 --timeout 600 "$@"
