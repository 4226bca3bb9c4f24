//! `cargo xtask <command>`: the project's user-facing commands.
//!
//! - `check-reference FILE... [--tol 1e-4]`: the engine against PyTorch reference vectors.

use std::process::ExitCode;

mod bench_report;
mod check_reference;
mod cli;
mod console;
mod embedded;
mod eval;
mod export;
mod fetch_data;
mod heap;
mod sweep;
mod train;

const USAGE: &str = "usage: cargo xtask <command> [options]

commands:
  bench-report [--criterion DIR] [--out FILE] [--svg FILE] [--peak-gflops G]
                                      table (markdown, default docs/sparse-bench.md) and
                                      plot (default docs/sparse-latency.svg) of the results
                                      of `cargo bench --bench sparse` (criterion's directory
                                      DIR, default target/criterion); G: peak for the
                                      % of peak column (default 174)
  check-reference FILE... [--tol T]   check the engine against PyTorch reference files
                                      (../shared/reference/*.safetensors); exits non-zero
                                      if any tensor's relative error exceeds T (default 1e-4)
  fetch-data [--dataset D] [--from DIR] [--data DIR]
                                      fetch and SHA-256-verify D = mnist, fashion-mnist,
                                      cifar10 or all (default; comma lists work) into DIR
                                      (default datasets/, or $RCC_DATA), downloading from
                                      the official sites or copying from a mirror (--from)
  train [--config FILE] [--method prox|prox:l1:L[:layer]|prox:group:L[:layer]|prox:dist:L|admm[:RHO:EVERY]|magnitude|dense|none]
        [--rate R] [--budget layer|global] [--teacher FILE] [--alpha A] [--temperature T]
        [--teacher-input clean|adv] [--finetune N] [--ramp F] [--ramp-start F] [--init FILE]
        [--dataset D]
        [--arch A] [--adv none|pgd:EPS:STEPS:STEP|fgsm-rs:EPS:ALPHA|trades:EPS:STEPS:STEP:BETA] [--adv-mix M]
        [--adv-warmup N] [--epochs N] [--batch B] [--optimizer sgd|adam] [--lr LR]
        [--momentum M] [--nesterov true|false] [--weight-decay WD]
        [--schedule constant|step:EVERY:GAMMA|cosine[:MIN]] [--seed S] [--val N]
        [--augment true|false] [--robust-every N] [--robust-limit N] [--threads T]
        [--out DIR] [--data DIR] [--no-report] | --resume DIR
                                      with no flags, the whole framework on MNIST: a robust
                                      lenet_adv:4 teacher (trained once, then cached in
                                      runs/teachers/), compressed 16x by the proximal method
                                      with PGD-10 examples and distillation, debiased, then
                                      evaluated (FGSM, PGD-40 x2 restarts, APGD-CE; dense
                                      masked and exported sparse), exported, and reported in
                                      DIR/report.md; flags or a key = value config file
                                      change any setting (--method none: plain training;
                                      --no-report: stop after training; --ramp: fraction
                                      of the pruning epochs over which the prox tightens,
                                      default 0.6, after --ramp-start of them dense,
                                      default 0; with --val N the during-training PGD-40
                                      check and the final evaluation run on the N held-out
                                      images, not the test set)
  sweep [--preset table2-w4|table2-w8|fashion-w4|tradeoff-w8] [--out DIR] [--teacher FILE]
        [--only NAME,...] [--seeds 1,2,3] [--threads T] [--jobs J] [--data DIR] [--val N]
        [--plan] [--report]
                                      one row of method.md's Table 2: a teacher, then every
                                      method at every rate with the same budget, ablations
                                      and dense small nets; results.{md,csv,json,svg} in DIR
                                      (default runs/sweep-PRESET); rerun to resume;
                                      --plan lists the runs and where each stands, writes
                                      their configs to DIR/configs/ and trains nothing;
                                      --val N runs it on a validation split (default
                                      DIR runs/sweep-PRESET-valN)
  eval --model FILE [--dataset D] [--arch A]
       [--attack fgsm|pgd|pgd-l2|apgd-ce|apgd-dlr|all] [--eps E] [--eps-l2 E]
       [--steps N] [--step-size S] [--step-size-l2 S] [--restarts R] [--seed S] [--limit N] [--batch B] [--threads T] [--json]
       [--eps-sweep E1,E2,... [--plot FILE.svg]] [--transfer-from FILE [--source-arch A]]
                                      clean test accuracy of a model file, and its
                                      accuracy under each attack (defaults per dataset:
                                      MNIST eps 0.3, PGD-40 step 0.01, random start;
                                      APGD 100 steps); --eps-sweep prints accuracy
                                      against eps, --plot draws it as SVG;
                                      --transfer-from crafts the attacks on another
                                      model (PGD takes every step) and classifies their
                                      points with this one: a black-box check for
                                      gradient masking
  export --model FILE --out FILE [--arch A] [--kernels auto|csr|dense]
         [--format safetensors|c] [--name NAME]
                                      write a (pruned) model as a sparse CSR file, read it
                                      back, check its logits against the dense model (1e-4)
                                      and print per-layer nnz, kernels and memory;
                                      --format c: OUT/NAME.h and OUT/NAME.c (C99 for
                                      firmware) and their Cortex-M4F flash and RAM
";

/// Counts heap bytes, for the training-memory figures of compression runs (heap.rs).
#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo xtask CMD --help` prints the usage too.
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("bench-report") => bench_report::run(&args[1..]),
        Some("check-reference") => check_reference::run(&args[1..]),
        Some("export") => export::run(&args[1..]),
        Some("fetch-data") => fetch_data::run(&args[1..]),
        Some("train") => train::run(&args[1..]),
        Some("eval") => eval::run(&args[1..]),
        Some("sweep") => sweep::run(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
