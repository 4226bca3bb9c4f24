#!/usr/bin/env bash
# Carries a sweep's finished runs from one machine (or session) to the next through git.
#
#   scripts/sweep-archive.sh save    runs/sweep-NAME [docs/runs/sweep-NAME]
#   scripts/sweep-archive.sh restore runs/sweep-NAME [docs/runs/sweep-NAME]
#
# Why: `runs/` is git-ignored (models, checkpoints, logs), and a sweep such as
# tradeoff-w8 (49 runs, about 30 core-hours) outlives the machine it started on. What a
# finished run leaves that the results tables read is small: its `config.txt` (the
# settings; the sweep refuses a folder whose settings differ from the preset's) and its
# `summary.txt` (every figure of the tables, the per-layer densities included), plus the
# `report.md` a reader checks them against. `save` copies those three files of every
# finished run (one with a `summary.txt`) into the archive, and the teacher's
# `model.safetensors` too (every other run starts from it or distils from it, and it
# takes about an hour of both cores to retrain), with its sha256. `restore` copies them
# back without overwriting anything, checks the teacher's hash, and the sweep then skips
# those runs as done: `cargo xtask sweep --preset NAME ... --report` rebuilds the results
# from them, and the same sweep command trains only what is missing.
#
# Runs that were not finished (a checkpoint, no summary) are not archived: they restart
# from scratch on the next machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: scripts/sweep-archive.sh save|restore runs/sweep-NAME [ARCHIVE]"
MODE=${1:?$usage}
SWEEP=${2:?$usage}
SWEEP=${SWEEP%/}
ARCHIVE=${3:-$ROOT/docs/runs/$(basename "$SWEEP")}
FILES=(config.txt summary.txt report.md)

case $MODE in
  save)
    [ -d "$SWEEP" ] || { echo "$SWEEP: no such sweep folder" >&2; exit 1; }
    n=0
    for run in "$SWEEP"/*/; do
      name=$(basename "$run")
      [ -f "$run/summary.txt" ] || continue
      mkdir -p "$ARCHIVE/$name"
      for f in "${FILES[@]}"; do
        [ -f "$run/$f" ] && cp "$run/$f" "$ARCHIVE/$name/$f"
      done
      if [ "$name" = teacher ] && [ -f "$run/model.safetensors" ]; then
        cp "$run/model.safetensors" "$ARCHIVE/$name/model.safetensors"
        (cd "$ARCHIVE/$name" && sha256sum model.safetensors > model.safetensors.sha256)
      fi
      n=$((n + 1))
    done
    echo "archived $n finished run(s) of $SWEEP in $ARCHIVE"
    ;;
  restore)
    [ -d "$ARCHIVE" ] || { echo "$ARCHIVE: no archive" >&2; exit 1; }
    if [ -f "$ARCHIVE/teacher/model.safetensors.sha256" ]; then
      (cd "$ARCHIVE/teacher" && sha256sum --quiet -c model.safetensors.sha256) \
        || { echo "$ARCHIVE/teacher/model.safetensors: sha256 differs from model.safetensors.sha256" >&2; exit 1; }
    fi
    n=0
    for run in "$ARCHIVE"/*/; do
      name=$(basename "$run")
      mkdir -p "$SWEEP/$name"
      if [ -f "$SWEEP/$name/summary.txt" ]; then
        cmp -s "$run/summary.txt" "$SWEEP/$name/summary.txt" \
          || echo "$SWEEP/$name: already finished here with other figures; kept as it is" >&2
        continue
      fi
      # A run started here but not finished is replaced by the archived finished one.
      rm -f "$SWEEP/$name/checkpoint.safetensors" "$SWEEP/$name/checkpoint.prev.safetensors"
      for f in "$run"*; do
        case $(basename "$f") in *.sha256) continue ;; esac
        cp "$f" "$SWEEP/$name/"
      done
      n=$((n + 1))
    done
    echo "restored $n finished run(s) into $SWEEP from $ARCHIVE"
    ;;
  *) echo "$usage" >&2; exit 1 ;;
esac
