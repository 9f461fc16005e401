#!/usr/bin/env bash
# What check_preemption() once per optimizer step costs the Fashion-MNIST example (2 CPU processes): the epoch's
# training seconds with --output_dir (the example checks every step) against without (it never checks), in
# alternating runs. Prints each run and the median ratio.
# Usage: bench/preemption_check_bench.sh [ROUNDS] [LIMIT]   (from the repository root, after a build)
set -euo pipefail
rounds="${1:-3}" limit="${2:-12000}"
bin=build/bin
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
run() {  # run with|without: the epoch's training seconds
  local extra=()
  [ "$1" = with ] && extra=(--output_dir "$dir/out")
  rm -rf "$dir/out"
  "$bin/accelerate-cpp" launch --num_processes 2 --cpu "$bin/fashion_mnist" --limit "$limit" --epochs 1 \
    --batch_size 32 "${extra[@]}" 2>/dev/null | sed -n 's/.*epoch 0 .* seconds \([0-9.]*\).*/\1/p'
}
ratios=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then  # the order alternates too: the first run of a pair tends to be slower
    without=$(run without)
    with=$(run with)
  else
    with=$(run with)
    without=$(run without)
  fi
  ratio=$(python3 -c "print(f'{$with / $without:.3f}')")
  echo "round $r: without checks ${without} s, with checks ${with} s, ratio ${ratio}"
  ratios+=("$ratio")
done
python3 -c "import statistics, sys; print('median ratio', statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
