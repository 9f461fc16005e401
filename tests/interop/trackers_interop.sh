#!/usr/bin/env bash
# The example on 2 CPU processes with every tracker, then Python's readers check what was written.
# Usage: trackers_interop.sh CLI EXAMPLE PYTHON
set -euo pipefail
CLI=$1 EXAMPLE=$2 PYTHON=$3
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$CLI" launch --num_processes 2 --cpu --timeout 60 "$EXAMPLE" --epochs 2 --limit 2000 --with_tracking \
  --report_to all --output_dir "$OUT"
"$PYTHON" "$(dirname "$0")/trackers_interop.py" "$OUT/fashion_mnist" 2
