#!/bin/sh
# Coverage-guided fuzzing of one rcc reader with AFL++ (through cargo-afl, stable Rust).
#
#   scripts/fuzz.sh TARGET SECONDS   fuzz TARGET for SECONDS (resumes earlier findings)
#   scripts/fuzz.sh --save TARGET    minimise the findings' queue into fuzz/corpus/TARGET
#   scripts/fuzz.sh --list           the targets
#   scripts/fuzz.sh --stats          every target's totals so far, as a markdown table
#
# Targets and what each runs: fuzz/src/lib.rs. Findings go to target/afl/findings/TARGET
# (crashes/ and hangs/ hold the inputs to pin as regression tests). Needs cargo-afl:
#   cargo install cargo-afl && cargo afl config --build
# Fuzzing is never part of CI; CI replays fuzz/corpus/ as tests (fuzz/tests/replay.rs).
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=target/afl
bin=target/afl/release/rcc-fuzz

build() {
    if ! command -v cargo-afl >/dev/null 2>&1; then
        echo "fuzz.sh: cargo-afl is missing; install it with: cargo install cargo-afl && cargo afl config --build" >&2
        exit 1
    fi
    cargo afl build --release -q -p rcc-fuzz --features afl --bin rcc-fuzz
}

stat() { grep "^$1 " "$2" | cut -d: -f2 | tr -d ' '; }

case "${1:-}" in
--stats)
    echo "| target | executions | fuzzing time | exec/s (last run) | corpus | crashes | hangs |"
    echo "|---|---|---|---|---|---|---|"
    for target in $("$0" --list); do
        f=target/afl/findings/$target/default/fuzzer_stats
        [ -f "$f" ] || { echo "| $target | not fuzzed yet | | | | | |"; continue; }
        secs=$(stat run_time "$f")
        printf '| %s | %s | %d h %02d min | %s | %s | %s | %s |\n' "$target" "$(stat execs_done "$f")" \
            $((secs / 3600)) $((secs % 3600 / 60)) "$(stat execs_per_sec "$f")" \
            "$(stat corpus_count "$f")" "$(stat saved_crashes "$f")" "$(stat saved_hangs "$f")"
    done
    exit 0
    ;;
--list)
    grep -o '("[a-z]*", [a-z]*)' fuzz/src/lib.rs | cut -d'"' -f2
    exit 0
    ;;
--save)
    target=${2:?usage: scripts/fuzz.sh --save TARGET}
    build
    queue=target/afl/findings/$target/default/queue
    [ -d "$queue" ] || { echo "fuzz.sh: no findings for $target (run scripts/fuzz.sh $target SECONDS first)" >&2; exit 1; }
    tmp=target/afl/cmin-$target
    rm -rf "$tmp"
    # The seeds stay (they say where the corpus came from); the queue is minimised to the
    # inputs that each add coverage. (AFL++'s shell afl-cmin: its Python one, which
    # `cargo afl cmin` runs, records no coverage from afl.rs's persistent-mode targets.)
    cmin=$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -name afl-cmin.bash | head -1)
    [ -n "$cmin" ] || { echo "fuzz.sh: afl-cmin.bash not found (cargo afl config --build)" >&2; exit 1; }
    AFL_SKIP_BIN_CHECK=1 "$cmin" -i "$queue" -o "$tmp" -- "$bin" "$target" >"$tmp.log" 2>&1 || {
        tail -5 "$tmp.log" >&2
        exit 1
    }
    find "fuzz/corpus/$target" -type f ! -name 'seed-*' -delete
    for f in "$tmp"/*; do
        cp "$f" "fuzz/corpus/$target/$(sha256sum "$f" | cut -c1-16)"
    done
    echo "fuzz/corpus/$target: $(ls "fuzz/corpus/$target" | wc -l) inputs"
    exit 0
    ;;
esac

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS (scripts/fuzz.sh --list for the targets)}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
[ -d "fuzz/corpus/$target" ] || { echo "fuzz.sh: no target $target; the targets are:" >&2; "$0" --list >&2; exit 1; }
build
out=target/afl/findings/$target
input="fuzz/corpus/$target"
# A second run continues the first's queue.
[ -f "$out/default/fuzzer_stats" ] && input=-
mkdir -p "$out"
AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    cargo afl fuzz -i "$input" -o "$out" -V "$seconds" -t 2000 -- "$bin" "$target" >"$out.log" 2>&1 || {
    tail -20 "$out.log" >&2
    exit 1
}
stats=$out/default/fuzzer_stats
for key in execs_done run_time execs_per_sec corpus_count saved_crashes saved_hangs; do
    printf '%-14s %s\n' "$key" "$(stat "$key" "$stats")"
done
crashes=$(find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt | wc -l)
if [ "$crashes" -gt 0 ]; then
    echo "fuzz.sh: $crashes crashing or hanging inputs in $out/default/{crashes,hangs}" >&2
    exit 1
fi
