#!/usr/bin/env bash
# Issue 23's equality and robustness checks of a C export, on every target whose tools
# are installed (host gcc, host clang, gcc with -fsanitize=address,undefined, Cortex-A53
# under qemu-aarch64, Cortex-M4F under qemu-system-arm mps2-an386). Installs nothing: a
# missing tool is reported with its Debian package and that target is skipped.
#
#   scripts/embedded-check.sh MODEL [NAME] [OUT]
#
# MODEL: a dense or sparse model file. Exports it (`cargo xtask export --format c`, the
# engine's per-layer kernel choice, or $KERNELS), writes the first $N (1000) MNIST test
# images and PGD-40 points crafted by rcc against the sparse model with the engine's
# logits (examples/embedded_vectors.rs), then runs embedded/harness.c on each target,
# natural and PGD, and prints one line per run. Fails if any run's logits differ from
# the engine's by more than 1e-5 relative or any class differs.
# Environment: N (1000), DATA (datasets), KERNELS (auto), SHIFT (qemu -icount shift, 3).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/embedded-lib.sh"

MODEL=${1:?usage: scripts/embedded-check.sh MODEL [NAME] [OUT]}
NAME=${2:-model}
OUT=$(realpath -m "${3:-$ROOT/target/embedded/$NAME}")
N=${N:-1000}
mkdir -p "$OUT"

(cd "$ROOT" && cargo build --release -q -p xtask && cargo build --release -q --example embedded_vectors) || exit 1
BIN=$ROOT/target/release
"$BIN/xtask" export --model "$MODEL" --format c --name "$NAME" --kernels "${KERNELS:-auto}" \
  --out "$OUT/c" | tee "$OUT/export.txt" || exit 1
"$BIN/examples/embedded_vectors" vectors --model "$MODEL" --data "${DATA:-$ROOT/datasets}" \
  --n "$N" --kernels "${KERNELS:-auto}" --out "$OUT/vectors" | tee "$OUT/vectors.txt" || exit 1

status=0
for target in gcc clang sanitizers a53 m4; do
  have_target "$target" || continue
  exe="$OUT/harness-$target"
  if ! build "$target" "$OUT/c" "$NAME" "$exe"; then
    echo "$target: BUILD FAILED"
    status=1
    continue
  fi
  for set in natural pgd; do
    log="$OUT/$target-$set.txt"
    run "$target" "$exe" "$OUT/vectors/$set.in.f32" "$OUT/vectors/$set.logits.f32" >"$log" 2>&1
    rc=$?
    echo "$target $set: $(grep '^result:' "$log" || echo 'no result') (exit $rc)"
    grep '^m4:\|^host:' "$log" | sed 's/^/    /'
    [ $rc -eq 0 ] || { status=1; tail -5 "$log"; }
  done
done
if [ $status -eq 0 ]; then
  echo "all runs within 1e-5 with identical classes ($N images, natural and PGD-40)"
else
  echo "SOME RUNS FAILED (logs in $OUT)"
fi
exit $status
