#!/usr/bin/env bash
# Issue 23, must-show 4: instructions per inference on the emulated Cortex-M4F, dense
# export against the engine's per-layer choice (auto) and CSR everywhere, for lenet5 and
# lenet_adv:4 at the sparse benches' sparsities (crates/sparse/src/bench_matrix.rs).
#
#   scripts/embedded-sweep.sh [LENET_ADV4_TEACHER] [OUT]
#
# Models: magnitude-pruned per layer as the sparse benches prune theirs
# (examples/embedded_vectors.rs prune): lenet_adv:4 from the given trained dense model
# (else seeded random weights), lenet5 from seeded random weights (no trained lenet5 is
# kept). Counts are taken on the first $N (3) MNIST test images under qemu -icount
# (SysTick, calibrated; embedded/m4/counter.c): emulated instruction counts, not cycles.
# $SPARSITIES (percent) replaces the list. Prints a markdown table; needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and
# qemu-system-arm (says which is missing).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/embedded-lib.sh"
TEACHER=${1:-}
OUT=$(realpath -m "${2:-$ROOT/target/embedded/sweep}")
N=${N:-3}
have_target m4 || exit 1
mkdir -p "$OUT"
(cd "$ROOT" && cargo build --release -q -p xtask && cargo build --release -q --example embedded_vectors) || exit 1
BIN=$ROOT/target/release

# insns DIR NAME KERNELS: mean instructions per inference (and flash) of one export.
insns() {
  local dir=$1 name=$2 kernels=$3 log flash
  "$BIN/xtask" export --model "$dir/model.safetensors" --format c --name "$name" \
    --kernels "$kernels" --out "$dir/c-$kernels" >"$dir/export-$kernels.txt" || return 1
  flash=$(awk '$1 == "this" {print $2}' "$dir/export-$kernels.txt")
  build m4 "$dir/c-$kernels" "$name" "$dir/m4-$kernels.elf" || return 1
  log="$dir/m4-$kernels.txt"
  SHIFT=3 run m4 "$dir/m4-$kernels.elf" "$dir/v/natural.in.f32" "$dir/v/natural.logits.f32" >"$log" 2>&1
  if grep -q 'overflows [1-9]' "$log"; then
    # Past 2^24 ticks at shift 3 (84M instructions): the coarser shift 0 reaches 671M.
    SHIFT=0 run m4 "$dir/m4-$kernels.elf" "$dir/v/natural.in.f32" "$dir/v/natural.logits.f32" >"$log" 2>&1
  fi
  grep -q 'class_mismatches 0' "$log" && grep -q 'over_tol 0' "$log" || { echo "MISMATCH in $log" >&2; return 1; }
  echo "$(sed -n 's/.*mean \([0-9]*\) max.*/\1/p' "$log") $flash"
}

echo "| arch | sparsity | dense | auto (engine's choice) | CSR everywhere | auto / dense | auto kernels (conv1 conv2 fc1 fc2) | flash dense | flash auto |"
echo "|---|---|---|---|---|---|---|---|---|"
for arch in lenet5 lenet_adv:4; do
  for s in ${SPARSITIES:-0 50 80 90 95 98 99}; do
    id=${arch/:/}-$s
    dir=$OUT/$id
    mkdir -p "$dir"
    from=()
    [ "$arch" = lenet_adv:4 ] && [ -n "$TEACHER" ] && from=(--from "$TEACHER")
    "$BIN/examples/embedded_vectors" prune --arch "$arch" --sparsity "0.$(printf %02d "$s")" \
      "${from[@]}" --out "$dir/model.safetensors" >/dev/null || exit 1
    "$BIN/examples/embedded_vectors" vectors --model "$dir/model.safetensors" --n "$N" \
      --no-pgd --data "${DATA:-$ROOT/datasets}" --out "$dir/v" >/dev/null || exit 1
    read -r d fd < <(insns "$dir" m dense) || exit 1
    read -r a fa < <(insns "$dir" m auto) || exit 1
    read -r c _ < <(insns "$dir" m csr) || exit 1
    kinds=$(awk '$2 == "conv" || $2 == "linear" {printf "%s ", $3}' "$dir/export-auto.txt")
    ratio=$(awk -v a="$a" -v d="$d" 'BEGIN {printf "%.3f", a / d}')
    echo "| $arch | $s% | $d | $a | $c | $ratio | ${kinds% } | $fd | $fa |"
  done
done
