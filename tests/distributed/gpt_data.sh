#!/usr/bin/env bash
# A tiny byte-level corpus for the GPT example's tests: DIR/train.bin and DIR/val.bin (uint16 tokens, as
# scripts/prepare_shakespeare.py writes them), a repeated line so that a model of 1 layer learns it in seconds.
# Usage: gpt_data.sh PYTHON DIR
set -euo pipefail
"$1" - "$2" <<'PY'
import sys, pathlib, numpy as np
out = pathlib.Path(sys.argv[1]); out.mkdir()
line = b"To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. "
np.frombuffer(line * 300, np.uint8).astype(np.uint16).tofile(out / "train.bin")
np.frombuffer(line * 40, np.uint8).astype(np.uint16).tofile(out / "val.bin")
PY
