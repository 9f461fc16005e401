#!/usr/bin/env bash
# Issue 12, item 8: set-up on a machine that already has PyTorch (Colab, Kaggle). With ACCELERATE_CPP_PYTHON naming a
# Python that has torch==2.11.0, setup uses it as it is and creates no venv; an incompatible torch is refused with
# the version found and the version needed, before anything is downloaded or built; CMake, pointed at that Python,
# configures against its LibTorch and says which one.
# Usage: setup_python.sh REPO_ROOT PYTHON_WITH_TORCH_2_11
set -uo pipefail
root="$1" python="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "setup_python: FAILED: $*"; echo "$out"; exit 1; }

# An incompatible torch: a stand-in package that only carries a version.
mkdir -p "$tmp/fake/torch"
echo '__version__ = "2.10.1+cpu"' > "$tmp/fake/torch/__init__.py"
printf '#!/bin/sh\nPYTHONPATH="%s" exec python3 "$@"\n' "$tmp/fake" > "$tmp/python"
chmod +x "$tmp/python"
out=$(ACCELERATE_CPP_PYTHON="$tmp/python" ACCELERATE_CPP_VENV="$tmp/venv" bash "$root/scripts/setup.sh" 2>&1)
rc=$?
[ "$rc" != 0 ] || fail "an incompatible torch was accepted"
grep -q "has torch 2.10.1+cpu, but accelerate-cpp needs torch==2.11.0" <<<"$out" || fail "no clear refusal"
[ ! -e "$tmp/venv" ] || fail "a venv was created"

# A compatible one: used as it is, no venv.
out=$(ACCELERATE_CPP_PYTHON="$python" ACCELERATE_CPP_VENV="$tmp/venv" bash "$root/scripts/setup.sh" 2>&1)
rc=$?
[ "$rc" = 0 ] || fail "setup with ACCELERATE_CPP_PYTHON failed"
grep -q "using torch 2.11.0.* from $python (ACCELERATE_CPP_PYTHON); no venv" <<<"$out" || fail "setup did not say which torch"
[ ! -e "$tmp/venv" ] || fail "a venv was created"

# CMake configured against that Python's LibTorch (configure only: the build itself is the suite's).
out=$(cmake -S "$root" -B "$tmp/build" -G Ninja -DACCELERATE_PYTHON="$python" -DACCELERATE_BUILD_TESTS=OFF \
  -DACCELERATE_BUILD_BENCHMARKS=OFF -DACCELERATE_BUILD_EXAMPLES=OFF 2>&1)
grep -q "accelerate: using LibTorch 2.11" <<<"$out" || fail "CMake did not configure against LibTorch 2.11"
echo "setup_python: passed"
