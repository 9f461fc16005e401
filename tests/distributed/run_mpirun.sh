#!/usr/bin/env bash
# Runs a program under Open MPI's mpirun on loopback: `run_mpirun.sh NP PROGRAM [ARGS...]`.
# mpirun sets OMPI_COMM_WORLD_*; we add a free MASTER_PORT (mpirun has no rendezvous port of its own).
set -euo pipefail
np="$1"; shift
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
exec timeout -k 5 150 mpirun --allow-run-as-root --oversubscribe -np "$np" \
  -x MASTER_PORT="$port" -x ACCELERATE_CPP_TIMEOUT=60 "$@"
