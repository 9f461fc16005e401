#!/usr/bin/env bash
# The examples' bad flags end with code 2 and a message naming the flag, before any training: a negative or
# half-numeric value is not silently read as another number, and an output folder that cannot be written is found
# at start-up instead of at the first save. Usage: bad_input.sh BIN_DIR
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/a_file"
failures=0

expect() {  # expect CODE TEXT -- COMMAND...
  local code=$1 text=$2
  shift 3
  local out rc
  out=$(timeout 120 "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $code || $out != *"$text"* ]]; then
    echo "FAIL: $* -> rc $rc (want $code), output:"
    echo "$out" | tail -5
    failures=$((failures + 1))
  else
    echo "ok: $* -> $rc"
  fi
}

expect 2 "needs 'epoch' or a whole number >= 0, not '-3'" -- "$bin/fashion_mnist" --checkpointing_steps -3 --output_dir "$tmp/f"
expect 2 "flag --epochs: '2x' is not a valid number" -- "$bin/fashion_mnist" --epochs 2x
expect 2 "flag --seed: '-1' is not a valid number" -- "$bin/fashion_mnist" --seed -1
expect 2 "a_file/out' cannot be written" -- "$bin/fashion_mnist" --output_dir "$tmp/a_file/out"
expect 2 "needs a whole number >= 0, not '-3'" -- "$bin/gpt" --checkpointing_steps -3 --output_dir "$tmp/g"
expect 2 "a_file/out' cannot be written" -- "$bin/gpt" --output_dir "$tmp/a_file/out" --max_steps 1
expect 0 "--checkpointing_steps" -- "$bin/gpt" --help
# From a new user's trial: values that trained silently or ended in torch's own trace.
expect 2 "--epochs needs a whole number >= 1, not 0" -- "$bin/fashion_mnist" --epochs 0
expect 2 "--lr needs a number > 0, not -1" -- "$bin/by_feature_base" --lr -1
expect 2 "--limit needs a whole number >= 0" -- "$bin/by_feature_base" --limit -3
expect 2 "--total_limit needs a whole number >= 1, not 0" -- "$bin/by_feature_checkpointing" --total_limit 0 \
  --output_dir "$tmp/c"
# Another --data_dir is read, never the files unpacked from the default one.
expect 2 "--data_dir $tmp/none: there is no train-images-idx3-ubyte.gz" -- "$bin/by_feature_base" --data_dir "$tmp/none"
# Damaged data (a new user's trial of 2026-12-04): a truncated .gz trained at chance, a junk file printed torch's
# trace, and a file replaced in the same --data_dir was read from the old unpacked copy.
fmnist=/usr/share/datasets/fashion-mnist
mkdir -p "$tmp/cut" "$tmp/junk"
cp "$fmnist"/*.gz "$tmp/cut/" && cp "$fmnist"/*.gz "$tmp/junk/"
head -c 5000 "$fmnist/train-images-idx3-ubyte.gz" >"$tmp/cut/train-images-idx3-ubyte.gz"
expect 2 "a truncated or corrupt file" -- "$bin/fashion_mnist" --data_dir "$tmp/cut" --cache_dir "$tmp/cache" --limit 100
head -c 4000 /dev/urandom | gzip >"$tmp/junk/train-labels-idx1-ubyte.gz"
expect 2 "are not MNIST idx files" -- "$bin/fashion_mnist" --data_dir "$tmp/junk" --cache_dir "$tmp/cache" --limit 100
cp "$fmnist/train-labels-idx1-ubyte.gz" "$tmp/junk/"
expect 0 "epoch 0 train_loss" -- "$bin/fashion_mnist" --data_dir "$tmp/junk" --cache_dir "$tmp/cache" --limit 100 --epochs 1
head -c 4000 /dev/urandom | gzip >"$tmp/junk/train-labels-idx1-ubyte.gz"
expect 2 "are not MNIST idx files" -- "$bin/fashion_mnist" --data_dir "$tmp/junk" --cache_dir "$tmp/cache" --limit 100
[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
