//! `cargo xtask sweep --preset table2-w4|table2-w8|fashion-w4|tradeoff-w8|smoke [--out DIR]
//! [--teacher FILE] [--only NAME,...] [--seeds 1,2,3] [--threads T] [--jobs J] [--data DIR]
//! [--val N] [--plan] [--report]`:
//! one row of method.md's Table 2, every method side by side with the same budget.
//!
//! - `--seeds S,...` (default 1) runs every run but the teacher once per seed (folders
//!   `NAME` for seed 1, `NAME-sS` for the others; `--only NAME` selects a run at every
//!   seed). The tables then show each cell's mean ± sample sd and its number of seeds,
//!   and the ours-vs-ADMM verdict is taken on the means: a tie when the difference is
//!   within the larger of the two sds ([`TIE_PTS`] when a cell has one seed).
//! - `--val N` holds N training images out of every run (the teacher's too) and takes
//!   every figure on them instead of the test set (default folder
//!   `runs/sweep-PRESET-valN`): the sweep to choose settings on, seed 1 only (the split is
//!   drawn with the run's seed). A `--teacher` given with it must have been trained
//!   with the same `--val N --seed 1`, or it has seen the validation images.
//! - Every run's evaluation includes AutoAttack and the gradient-free Square Attack on
//!   the first 1,000 test images (`rcc_train::evaluate::autoattack_check`); the verdict uses
//!   the worst case that includes them whenever every run of both cells has it.
//!
//! - One robust dense teacher (`teacher/`, [`TEACHER_EPOCHS`] epochs of PGD-10 training),
//!   then at each compression rate of the row (the parameter counts of the narrower
//!   widths, e.g. 15.31x and 3.94x for w4): ours (`prox`, l0 prox with distillation),
//!   `admm` (Ye et al.; in `tradeoff-w8` also with the rho tuned under Adam,
//!   `admm-rho0.01-rRATE`, [`ADMM_TUNED`]) and `magnitude`, all with [`TrainConfig::pipeline`]'s recipe
//!   (PGD-10 examples, 4 + 2 epochs, Adam 5e-4, global budget); the ablations of ours at
//!   every rate (`--alpha 0`, `--adv none`; w4 rows only, see [`Preset::ablations`]); and
//!   the dense small nets trained adversarially from scratch with the teacher's recipe.
//! - Each run is a `cargo xtask train` child process in `DIR/<name>/` (so the peak
//!   resident memory in its metrics is its own), which also evaluates it (FGSM, PGD-40 x2
//!   restarts, APGD-CE on the full test set, dense masked and exported sparse) and
//!   writes its `report.md` and `summary.txt`.
//! - `--jobs J` runs J children at a time once the teacher is done (each with `--threads
//!   T`; their output goes to `DIR/logs/<name>.log` and the sweep prints a line as each
//!   starts and ends). The lenet_adv nets are too small for two threads to pay: one
//!   thread trained w4 at 964 samples/s with a two-thread run beside it, two threads at
//!   1,040 to 1,110 with the machine to themselves, so `--jobs 2 --threads 1` nearly
//!   doubles a sweep's throughput on two cores. A run's results do not depend on J.
//! - Resume: run the same command again. Finished runs (a `summary.txt`) are kept, a
//!   killed run continues from its last checkpoint, and a folder whose `config.txt`
//!   differs from the preset's is an error rather than silently mixed in (the teacher's
//!   path is one of those settings: resume with the same `--out`). `--plan`
//!   lists the runs and where each stands without running anything, and writes each
//!   run's config to `DIR/configs/` (a by-hand variant starts from it). `--report` writes
//!   the results files from the runs that have finished, and trains nothing.
//! - Writes `results.md`, `results.csv`, `results.json` and `results.svg` (PGD-40 and
//!   natural accuracy against compression rate, one line per method) in `DIR`, also
//!   when some runs failed or are missing (`--only`), which the table says.

//!
//! Files: this one runs a sweep (the runs as child processes, resume, `--plan`);
//! `rcc_train::presets` has the presets and the runs they expand to, `rcc_train::results`
//! the results tables and plot, `tests.rs` the tests.

#[cfg(test)]
mod tests;

pub use rcc_train::presets::*;
pub use rcc_train::results::*;

use crate::cli::{workspace_root, write_atomic, Cli};
use rcc_train::report::Summary;
use rcc_train::TrainConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Where a run stands: `done`, `resume` (a checkpoint), `new`, or an error if its
/// folder holds a run with other settings.
fn status(e: &Entry, dir: &Path) -> Result<&'static str, String> {
    let run = dir.join(&e.name);
    if run.join("config.txt").exists() {
        let mut have = TrainConfig::default();
        have.apply_file(&run.join("config.txt"))?;
        if have != e.cfg {
            return Err(format!(
                "{}: config.txt differs from the preset's settings for {}; move the folder away to rerun it",
                run.display(),
                e.name
            ));
        }
    }
    Ok(if run.join("summary.txt").exists() {
        "done"
    } else if run.join("checkpoint.safetensors").exists() {
        "resume"
    } else {
        "new"
    })
}

/// Writes `e`'s settings to `configs/NAME.txt` (what the sweep trains it from, and what
/// `--plan` leaves for a by-hand variant); returns the path.
fn write_config(e: &Entry, configs: &Path) -> Result<PathBuf, String> {
    let conf = configs.join(format!("{}.txt", e.name));
    write_atomic(&conf, e.cfg.to_text().as_bytes())?;
    Ok(conf)
}

/// Runs (or resumes) one entry as a child `train` process; with `log`, the child's output
/// goes to that file instead of this terminal.
fn run_entry(
    e: &Entry,
    dir: &Path,
    forward: &[String],
    configs: &Path,
    log: Option<&Path>,
) -> Result<(), String> {
    // The child of a killed sweep may still be stopping in this folder: wait until it
    // lets go, so that what the folder holds is final before deciding how to go on.
    let folder = rcc_train::RunDir::new(dir.join(&e.name));
    if folder.try_lock()?.is_none() {
        println!(
            "waiting for the process that holds {}",
            folder.lock_file().display()
        );
        drop(folder.lock()?);
    }
    if status(e, dir)? == "done" {
        return Ok(());
    }
    let run = dir.join(&e.name);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("train");
    if run.join("checkpoint.safetensors").exists() {
        cmd.arg("--resume").arg(&run);
    } else {
        let conf = write_config(e, configs)?;
        cmd.arg("--config").arg(&conf).arg("--out").arg(&run);
    }
    cmd.args(forward);
    // The child stops by itself if this sweep is killed (see `crate::console`), and
    // waits for the folder's lock if a killed sweep's child is still stopping.
    cmd.env(
        crate::console::SWEEP_PID_ENV,
        std::process::id().to_string(),
    );
    if let Some(log) = log {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|err| format!("{}: {err}", log.display()))
        };
        cmd.stdout(open()?).stderr(open()?);
    }
    let status = cmd
        .status()
        .map_err(|err| format!("{}: cannot start the training: {err}", e.name))?;
    if !status.success() {
        return Err(format!("{}: the run failed ({status})", e.name));
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let cli = Cli::parse(
        args,
        &[
            "preset", "out", "teacher", "only", "threads", "data", "seeds", "jobs", "val",
        ],
        &["plan", "report"],
    )?;
    let name = cli.get("preset").unwrap_or("table2-w4");
    let preset = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!(
            "--preset: unknown preset {name:?} (known: {})",
            names.join(", ")
        )
    })?;
    let val = cli.num::<usize>("val")?.unwrap_or(0);
    let dir = cli.get("out").map(PathBuf::from).unwrap_or_else(|| {
        let folder = match val {
            0 => format!("sweep-{name}"),
            n => format!("sweep-{name}-val{n}"),
        };
        workspace_root().join("runs").join(folder)
    });
    let given_teacher = cli.get("teacher").map(PathBuf::from);
    let teacher = given_teacher
        .clone()
        .unwrap_or_else(|| dir.join("teacher").join("model.safetensors"));
    let seeds = parse_seeds(cli.get("seeds").unwrap_or("1"))?;
    if val > 0 && seeds != [1] {
        // The split is drawn with the run's seed: a student of another seed would hold
        // out other images than its teacher (seed 1), which has trained on some of them.
        return Err("--val: a validation sweep runs seed 1 only (the split is drawn with the run's seed, and the teacher's is 1)".into());
    }
    let entries = || {
        let mut list = entries_for_seeds(preset, &teacher, &seeds);
        if given_teacher.is_some() {
            list.retain(|e| e.role != Role::Teacher);
        }
        for e in &mut list {
            e.cfg.val = val;
        }
        list
    };
    let mut list = entries();
    if let Some(only) = cli.get("only") {
        // A name selects that run; a cell's name (a run's name without `-sS`) selects it
        // at every seed.
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        for n in &names {
            if !list.iter().any(|e| e.name == *n || e.cell == *n) {
                let known: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
                return Err(format!(
                    "--only: no run {n:?} in {name} (runs: {})",
                    known.join(", ")
                ));
            }
        }
        // The teacher is needed by every compression run.
        list.retain(|e| {
            e.role == Role::Teacher
                || names.contains(&e.name.as_str())
                || names.contains(&e.cell.as_str())
        });
    }
    // The children would each fail on a bad thread count: refuse it here, before any run.
    cli.num::<usize>("threads")?;
    let jobs = cli.num::<usize>("jobs")?.unwrap_or(1);
    if jobs == 0 {
        return Err("--jobs: need at least 1".into());
    }
    let mut forward = vec![];
    for k in ["threads", "data"] {
        if let Some(v) = cli.get(k) {
            forward.extend([format!("--{k}"), v.to_string()]);
        }
    }
    let configs = dir.join("configs");
    std::fs::create_dir_all(&configs).map_err(|e| format!("{}: {e}", configs.display()))?;
    if cli.has("plan") {
        // The plan also writes each run's config, so that a variant of one run (another
        // seed, one flag changed) can be trained by hand before the sweep has reached it:
        // `cargo xtask train --config runs/sweep-P/configs/NAME.txt --seed 2 --out DIR`.
        for e in &list {
            write_config(e, &configs)?;
            let st = status(e, &dir).unwrap_or_else(|err| {
                eprintln!("{err}");
                "MISMATCH"
            });
            println!("{:<24} {:<8} {}", e.name, st, e.role.label());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = Instant::now();
    let mut failed = vec![];
    // `--report` writes the results of the runs that have finished and trains nothing
    // (a sweep stopped part-way, or read on another machine).
    let to_run = if cli.has("report") {
        &[][..]
    } else {
        &list[..]
    };
    let banner = |i: usize, e: &Entry| {
        println!(
            "\n=== sweep {name} [{}/{}] {} ({}, {:.2}x) — {:.0} min so far",
            i + 1,
            list.len(),
            e.name,
            e.role.label(),
            e.rate,
            t0.elapsed().as_secs_f64() / 60.0
        );
    };
    // The teacher first, alone: every other run starts from it or distils from it.
    let mut next = 0;
    if let Some(e) = to_run.first().filter(|e| e.role == Role::Teacher) {
        banner(0, e);
        next = 1;
        if let Err(err) = run_entry(e, &dir, &forward, &configs, None) {
            eprintln!("sweep: {err}");
            failed.push(err);
            next = to_run.len();
        }
    }
    if next < to_run.len() {
        // J workers take the runs in order. With one, a run's output goes to this
        // terminal as it comes; with several, each run's to its own log.
        let logs = (jobs > 1).then(|| dir.join("logs"));
        if let Some(logs) = &logs {
            std::fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        }
        let queue = std::sync::Mutex::new(next..to_run.len());
        let errors = std::sync::Mutex::new(vec![]);
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    let take = || queue.lock().map_or(None, |mut q| q.next());
                    while let Some(i) = take() {
                        let e = &to_run[i];
                        let log = logs.as_ref().map(|l| l.join(format!("{}.log", e.name)));
                        banner(i, e);
                        if let Some(log) = &log {
                            println!("    log: {}", log.display());
                        }
                        let started = Instant::now();
                        match run_entry(e, &dir, &forward, &configs, log.as_deref()) {
                            Ok(()) if log.is_some() => println!(
                                "    {} finished after {:.1} min",
                                e.name,
                                started.elapsed().as_secs_f64() / 60.0
                            ),
                            Ok(()) => {}
                            Err(err) => {
                                eprintln!("sweep: {err}");
                                if let Ok(mut v) = errors.lock() {
                                    v.push(err);
                                }
                            }
                        }
                    }
                });
            }
        });
        failed.extend(errors.into_inner().unwrap_or_default());
    }
    let all = entries();
    let results = collect(&all, &dir)?;
    let shown = dir.strip_prefix(workspace_root()).unwrap_or(&dir);
    let mut md = results_md(preset, shown, &results);
    md.push_str(&variants_md(&results, &variants(&all, &dir)?));
    write_atomic(&dir.join("results.md"), md.as_bytes())?;
    write_atomic(&dir.join("results.csv"), results_csv(&results).as_bytes())?;
    write_atomic(
        &dir.join("results.json"),
        results_json(preset, &results).as_bytes(),
    )?;
    write_atomic(
        &dir.join("results.svg"),
        results_svg(preset, &results).as_bytes(),
    )?;
    print!("\n{md}");
    println!("written: {}/results.{{md,csv,json,svg}}", dir.display());
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failed {
            eprintln!("failed: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

/// `1,2,3` -> the seeds, without repeats; at least one.
pub fn parse_seeds(list: &str) -> Result<Vec<u64>, String> {
    let mut out: Vec<u64> = vec![];
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let seed: u64 = item
            .parse()
            .map_err(|_| format!("--seeds: {item:?} is not a seed (a whole number)"))?;
        if !out.contains(&seed) {
            out.push(seed);
        }
    }
    if out.is_empty() {
        return Err("--seeds: no seed given (e.g. --seeds 1,2,3)".into());
    }
    Ok(out)
}

/// The finished runs in `dir` that are not among `all` (trained by hand, e.g. from
/// `configs/NAME.txt` with a flag changed), in name order.
pub fn variants(all: &[Entry], dir: &Path) -> Result<Vec<Variant>, String> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Ok(vec![]);
    };
    let mut names: Vec<String> = listing
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| !all.iter().any(|e| &e.name == n))
        .filter(|n| dir.join(n).join("summary.txt").is_file())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let run = dir.join(&name);
            let mut cfg = TrainConfig::default();
            cfg.apply_file(&run.join("config.txt"))?;
            let summary = Summary::read(&run).map_err(|e| e.to_string())?;
            Ok(Variant { name, cfg, summary })
        })
        .collect()
}

/// Each entry with its summary, if it has one.
pub fn collect<'a>(
    all: &'a [Entry],
    dir: &Path,
) -> Result<Vec<(&'a Entry, Option<Summary>)>, String> {
    all.iter()
        .map(|e| {
            let path = dir.join(&e.name).join("summary.txt");
            let s = match std::fs::read_to_string(&path) {
                Ok(text) => Some(
                    Summary::parse(&text).map_err(|err| format!("{}: {err}", path.display()))?,
                ),
                Err(_) => None,
            };
            Ok((e, s))
        })
        .collect()
}
