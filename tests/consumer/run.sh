#!/usr/bin/env bash
# Installs the build into a prefix, then configures, builds and runs tests/consumer against it.
set -euo pipefail
build="$1"; source_dir="$2"; python="$3"; launcher="$4"
prefix="$build/consumer-prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$source_dir/tests/consumer" -B "$build/consumer-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DACCELERATE_PYTHON="$python" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >"$build/consumer-configure.log" 2>&1 \
  || { cat "$build/consumer-configure.log"; exit 1; }
cmake --build "$build/consumer-build"
"$build/consumer-build/consumer"
"$launcher" launch --num_processes 2 --cpu "$build/consumer-build/consumer"
