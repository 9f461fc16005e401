#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test. Each multi-process test has a deadline.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# Our sources follow .clang-format (Debian's clang-format 14): a file that does not fails the run.
(cd "$ROOT" && find include src cli tests bench examples fuzz -name '*.cpp' -o -name '*.hpp' | sort |
  xargs clang-format --dry-run -Werror) || { echo "run-tests: format: run clang-format -i on the files above" >&2; exit 1; }
# Functions in src/, cli/ and examples/ (main() included) stay short enough to read at once.
mapfile -t sources < <(cd "$ROOT" && find src cli examples -name '*.cpp' | sort)
(cd "$ROOT" && python3 scripts/function-lengths.py --max 60 "${sources[@]}" >/dev/null) ||
  { (cd "$ROOT" && python3 scripts/function-lengths.py "${sources[@]}");
    echo "run-tests: a function is over 60 lines (above)" >&2; exit 1; }
cd "$ROOT/build"
# The tests must not pick up this machine's own `accelerate-cpp config` file.
export ACCELERATE_CPP_CONFIG_FILE="$ROOT/build/tests-have-no-default-config.yaml"
exec ctest --output-on-failure -j 2 --timeout 600 "$@"
