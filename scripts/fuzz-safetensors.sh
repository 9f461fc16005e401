#!/usr/bin/env bash
# Fuzzes the safetensors parser with libFuzzer under ASan and UBSan for a bounded time.
#   scripts/fuzz-safetensors.sh [SECONDS=60] [WORK_DIR=build/fuzz]
# Prints libFuzzer's execution count; exits non-zero on any crash, leak or sanitizer report (the reproducer is
# left in WORK_DIR).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_RUN="${1:-60}"
WORK="${2:-$ROOT/build/fuzz}"
mkdir -p "$WORK/corpus"
BIN="$WORK/safetensors_fuzz"
if [ ! -x "$BIN" ] || [ "$ROOT/src/safetensors_format.cpp" -nt "$BIN" ] || [ "$ROOT/fuzz/safetensors_fuzz.cpp" -nt "$BIN" ]; then
  # The library's warnings (cmake/AccelerateWarnings.cmake), as errors.
  clang++ -std=c++20 -O1 -g -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$ROOT/include" -I"$ROOT/src" "$ROOT/fuzz/safetensors_fuzz.cpp" "$ROOT/src/safetensors_format.cpp" -o "$BIN"
fi
# Seeds: small valid files in the format's shapes.
python3 - "$WORK/corpus" <<'PY'
import json, struct, sys, os
def write(name, header, data=b""):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(os.path.join(sys.argv[1], name), "wb").write(struct.pack("<Q", len(h)) + h + data)
write("one", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
write("meta", {"__metadata__": {"format": "pt"}, "w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
               "b": {"dtype": "BOOL", "shape": [3], "data_offsets": [8, 11]}}, b"\1" * 11)
write("empty", {})
PY
"$BIN" "$WORK/corpus" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -artifact_prefix="$WORK/" -print_final_stats=1 \
  2>&1 | tee "$WORK/fuzz.log" | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash|Done" || true
grep -q "ERROR: " "$WORK/fuzz.log" && { echo "fuzz: FOUND A PROBLEM, see $WORK/fuzz.log"; exit 1; }
echo "fuzz: 0 crashes in ${SECONDS_TO_RUN}s"
