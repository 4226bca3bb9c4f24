//! `cargo xtask sweep --preset table2-w4|table2-w8|fashion-w4 [--out DIR]
//! [--teacher FILE] [--only NAME,...] [--seeds 1,2,3] [--threads T] [--data DIR] [--plan]`:
//! one row of method.md's Table 2, every method side by side with the same budget.
//!
//! - `--seeds S,...` (default 1) runs every run but the teacher once per seed (folders
//!   `NAME` for seed 1, `NAME-sS` for the others; `--only NAME` selects a run at every
//!   seed). The tables then show each cell's mean ± sample sd and its number of seeds,
//!   and the ours-vs-ADMM verdict is taken on the means: a tie when the difference is
//!   within the larger of the two sds ([`TIE_PTS`] when a cell has one seed).
//! - Every run's evaluation includes AutoAttack and the gradient-free Square Attack on
//!   the first 1,000 test images (`crate::pipeline::autoattack_check`); the verdict uses
//!   the worst case that includes them whenever every run of both cells has it.
//!
//! - One robust dense teacher (`teacher/`, [`TEACHER_EPOCHS`] epochs of PGD-10 training),
//!   then at each compression rate of the row (the parameter counts of the narrower
//!   widths, e.g. 15.31x and 3.94x for w4): ours (`prox`, l0 prox with distillation),
//!   `admm` (Ye et al.) and `magnitude`, all with [`TrainConfig::pipeline`]'s recipe
//!   (PGD-10 examples, 4 + 2 epochs, Adam 5e-4, global budget); the ablations of ours at
//!   every rate (`--alpha 0`, `--adv none`; w4 rows only, see [`Preset::ablations`]); and
//!   the dense small nets trained adversarially from scratch with the teacher's recipe.
//! - Each run is a `cargo xtask train` child process in `DIR/<name>/` (so the peak
//!   resident memory in its metrics is its own), which also evaluates it (FGSM, PGD-40 x2
//!   restarts, APGD-CE on the full test set, dense masked and exported sparse) and
//!   writes its `report.md` and `summary.txt`.
//! - Resume: run the same command again. Finished runs (a `summary.txt`) are kept, a
//!   killed run continues from its last checkpoint, and a folder whose `config.txt`
//!   differs from the preset's is an error rather than silently mixed in (the teacher's
//!   path is one of those settings: resume with the same `--out`). `--plan`
//!   lists the runs and where each stands without running anything, and writes each
//!   run's config to `DIR/configs/` (a by-hand variant starts from it).
//! - Writes `results.md`, `results.csv`, `results.json` and `results.svg` (PGD-40 and
//!   natural accuracy against compression rate, one line per method) in `DIR`, also
//!   when some runs failed or are missing (`--only`), which the table says.

use crate::cli::{workspace_root, write_atomic, Cli};
use crate::eval::Protocol;
use crate::pipeline::{pct, Summary};
use crate::svg::{nice_step, Svg};
use crate::train::{AdvTraining, TrainConfig};
use rcc_compress::{Method, DEFAULT_RAMP};
use rcc_data::DatasetKind;
use rcc_nn::{Arch, Model};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Epochs of a sweep's teacher and of its dense small baselines.
pub const TEACHER_EPOCHS: usize = 20;
/// ADMM as Ye et al. set it (rho 1e-3, x1.3 per update), with an update every epoch:
/// their 4-epoch interval would give only one update in our 4 pruning epochs.
pub const ADMM: &str = "admm:0.001:1";

/// Ours in a sweep: the teacher sees the student's adversarial batch, and the l0 prox's
/// window (method.md section 2) is set from the target rate by [`ours_window`]. Both
/// were chosen on a validation split (`--val 10000`, w4, seed 1;
/// `docs/w4-3.94x-study.md`): the teacher on adversarial inputs helps at both rates
/// (+0.22 to +0.50 PGD-40), and the window's best start depends on the rate.
/// `cargo xtask train`'s own defaults stay method.md's (window from the start, clean
/// input).
pub const OURS_TEACHER_INPUT: &str = "adv";
/// Below this rate (more than an eighth of the weights kept) ours trains dense for the
/// first [`LATE_RAMP_START`] of the pruning epochs and tightens over the next
/// [`LATE_RAMP`]; at or above it the window starts at once and lasts method.md's
/// [`DEFAULT_RAMP`]. On the validation split the late window gains 0.11 PGD-40 at 3.94x
/// (93.13 against 93.02) and costs 0.85 at 15.31x (90.21 against 91.06): a quarter of
/// the weights can be chosen after the dense net has trained further, a fifteenth
/// cannot. No rate between the two was tried; 8 is about their geometric mean.
pub const LATE_WINDOW_BELOW_RATE: f64 = 8.0;
/// See [`LATE_WINDOW_BELOW_RATE`].
pub const LATE_RAMP_START: f64 = 0.5;
/// See [`LATE_WINDOW_BELOW_RATE`].
pub const LATE_RAMP: f64 = 0.5;

/// The l0 prox's window `(ramp_start, ramp)` for ours at `rate`: the late window at the
/// mild rates, method.md's default at the high ones ([`LATE_WINDOW_BELOW_RATE`]).
pub fn ours_window(rate: f64) -> (f64, f64) {
    if rate < LATE_WINDOW_BELOW_RATE {
        (LATE_RAMP_START, LATE_RAMP)
    } else {
        (0.0, DEFAULT_RAMP)
    }
}

/// A PGD-40 difference of one run each within this many points is a tie in the
/// verdicts. Three seeds of ours and of ADMM at w4 3.94x spread by 0.06 to 0.13 points
/// (sd), so the difference of two single runs has an sd of about 0.15: 0.3 is two of
/// them (and about the binomial standard error of one accuracy near 92% on 10,000
/// images, 0.27).
pub const TIE_PTS: f64 = 0.3;

/// Ye et al.'s published natural / PGD-40 (%): the dense teacher, then each smaller width.
pub struct Published {
    pub teacher: (f64, f64),
    pub columns: &'static [(f64, f64)],
}

/// A row of Table 2.
pub struct Preset {
    pub name: &'static str,
    pub dataset: DatasetKind,
    pub width: usize,
    /// Narrower widths whose parameter counts set the rates (and which are trained dense).
    pub smaller: &'static [usize],
    /// Ye et al.'s published natural / PGD-40 (%) for the dense teacher and each smaller
    /// width, if the row is in their table.
    pub published: Option<Published>,
    /// Whether the row also runs the ablations of ours. The w8 row does not: each of its
    /// runs costs about twice a w4 run (measured: 13 to 14 min against 6 to 7 on 2 cores,
    /// training and evaluation), and the w4 and Fashion-MNIST rows already show what
    /// distillation and the adversarial examples add.
    pub ablations: bool,
}

pub const PRESETS: [Preset; 3] = [
    Preset {
        name: "table2-w4",
        dataset: DatasetKind::Mnist,
        width: 4,
        smaller: &[1, 2],
        published: Some(Published {
            teacher: (98.15, 91.38),
            columns: &[(96.22, 89.41), (97.68, 91.77)],
        }),
        ablations: true,
    },
    Preset {
        name: "table2-w8",
        dataset: DatasetKind::Mnist,
        width: 8,
        smaller: &[1, 2, 4],
        published: Some(Published {
            teacher: (98.85, 93.51),
            columns: &[(97.31, 92.16), (98.31, 93.93), (98.87, 94.27)],
        }),
        ablations: false,
    },
    Preset {
        name: "fashion-w4",
        dataset: DatasetKind::FashionMnist,
        width: 4,
        smaller: &[1, 2],
        published: None,
        ablations: true,
    },
];

fn params(width: usize) -> usize {
    Model::new(Arch::LenetAdv(width), 0).params.len()
}

impl Preset {
    /// The rate that brings lenet_adv(width) to lenet_adv(w)'s parameter count, to two
    /// decimals.
    pub fn rate_to(&self, w: usize) -> f64 {
        (100.0 * params(self.width) as f64 / params(w) as f64).round() / 100.0
    }
}

/// What a run is in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Teacher,
    Ours,
    Admm,
    Magnitude,
    NoDistill,
    NoAdv,
    DenseSmall,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Teacher => "dense teacher (adversarial training)",
            Role::Ours => "ours: prox + distillation",
            Role::Admm => "ADMM (Ye et al.)",
            Role::Magnitude => "magnitude + adv. fine-tuning",
            Role::NoDistill => "ours without distillation (alpha 0)",
            Role::NoAdv => "ours without adversarial examples",
            Role::DenseSmall => "dense small net, adversarial from scratch",
        }
    }
}

pub struct Entry {
    pub name: String,
    /// The table cell the run belongs to: its name without the seed suffix.
    pub cell: String,
    pub role: Role,
    /// The target rate (1 for the teacher; the parameter ratio for a dense small net).
    pub rate: f64,
    pub cfg: TrainConfig,
}

impl Entry {
    /// The rate the tables and the plot show for this run: the one it reached, except
    /// that a dense small net (rate 1 by itself) sits at its parameter ratio.
    fn shown_rate(&self, s: &Summary) -> f64 {
        if self.role == Role::DenseSmall {
            self.rate
        } else {
            s.rate()
        }
    }
}

/// Every run of a preset at each of `seeds`, teacher first: the teacher once (seed 1,
/// shared by every run), each other run once per seed, named `NAME` for seed 1 (so a
/// one-seed sweep's folders are those of earlier sweeps) and `NAME-sS` for seed S.
pub fn entries_for_seeds(p: &Preset, teacher: &Path, seeds: &[u64]) -> Vec<Entry> {
    let (mut out, runs): (Vec<Entry>, Vec<Entry>) = entries(p, teacher)
        .into_iter()
        .partition(|e| e.role == Role::Teacher);
    // Seed after seed, so that a sweep cut short has whole rows of the first seeds.
    for &seed in seeds {
        for e in &runs {
            out.push(Entry {
                name: if seed == 1 {
                    e.name.clone()
                } else {
                    format!("{}-s{seed}", e.name)
                },
                cell: e.cell.clone(),
                role: e.role,
                rate: e.rate,
                cfg: TrainConfig {
                    seed,
                    ..e.cfg.clone()
                },
            });
        }
    }
    out
}

/// Every run of a preset, teacher first (seed 1).
pub fn entries(p: &Preset, teacher: &Path) -> Vec<Entry> {
    let arch = Arch::LenetAdv(p.width);
    let mut out = vec![Entry {
        name: "teacher".into(),
        cell: String::new(),
        role: Role::Teacher,
        rate: 1.0,
        cfg: TrainConfig::teacher_recipe(p.dataset, arch, TEACHER_EPOCHS, 1),
    }];
    let compress = |method: &str, rate: f64, alpha: f32| {
        let mut c = TrainConfig {
            dataset: p.dataset,
            arch,
            adv: AdvTraining::for_dataset(p.dataset),
            rate,
            alpha,
            teacher: teacher.display().to_string(),
            ..TrainConfig::pipeline()
        };
        c.method = Some(Method::parse(method).expect("preset methods parse"));
        c
    };
    // Ours and its ablations share the sweep's schedule and teacher input (see
    // [`OURS_TEACHER_INPUT`]); each ablation then changes one thing.
    let ours = |rate: f64, alpha: f32| {
        let (ramp_start, ramp) = ours_window(rate);
        TrainConfig {
            teacher_input: OURS_TEACHER_INPUT.into(),
            ramp_start,
            ramp,
            ..compress("prox", rate, alpha)
        }
    };
    let rates: Vec<f64> = p.smaller.iter().map(|&w| p.rate_to(w)).collect();
    for &rate in &rates {
        out.push(Entry {
            name: format!("prox-r{rate}"),
            cell: String::new(),
            role: Role::Ours,
            rate,
            cfg: ours(rate, 0.5),
        });
        out.push(Entry {
            name: format!("admm-r{rate}"),
            cell: String::new(),
            role: Role::Admm,
            rate,
            cfg: compress(ADMM, rate, 0.0),
        });
        out.push(Entry {
            name: format!("magnitude-r{rate}"),
            cell: String::new(),
            role: Role::Magnitude,
            rate,
            cfg: compress("magnitude", rate, 0.0),
        });
    }
    // The ablations of ours at every rate.
    for &r in rates.iter().filter(|_| p.ablations) {
        out.push(Entry {
            name: format!("prox-alpha0-r{r}"),
            cell: String::new(),
            role: Role::NoDistill,
            rate: r,
            cfg: ours(r, 0.0),
        });
        // Without adversarial examples the teacher can only see the clean batch (the
        // trainer refuses `teacher-input = adv` there).
        let mut no_adv = ours(r, 0.5);
        no_adv.adv = AdvTraining::None;
        no_adv.teacher_input = "clean".into();
        out.push(Entry {
            name: format!("prox-advnone-r{r}"),
            cell: String::new(),
            role: Role::NoAdv,
            rate: r,
            cfg: no_adv,
        });
    }
    for (&w, &rate) in p.smaller.iter().zip(&rates) {
        let mut cfg = TrainConfig::teacher_recipe(p.dataset, Arch::LenetAdv(w), TEACHER_EPOCHS, 1);
        cfg.method = Some(Method::Dense);
        out.push(Entry {
            name: format!("dense-w{w}"),
            cell: String::new(),
            role: Role::DenseSmall,
            rate,
            cfg,
        });
    }
    for e in out.iter_mut() {
        e.cell = e.name.clone();
    }
    out
}

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

/// Runs (or resumes) one entry as a child `train` process.
fn run_entry(e: &Entry, dir: &Path, forward: &[String], configs: &Path) -> Result<(), String> {
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
            "preset", "out", "teacher", "only", "threads", "data", "seeds",
        ],
        &["plan"],
    )?;
    let name = cli.get("preset").unwrap_or("table2-w4");
    let preset = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!(
            "--preset: unknown preset {name:?} (known: {})",
            names.join(", ")
        )
    })?;
    let dir = cli
        .get("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("runs").join(format!("sweep-{name}")));
    let given_teacher = cli.get("teacher").map(PathBuf::from);
    let teacher = given_teacher
        .clone()
        .unwrap_or_else(|| dir.join("teacher").join("model.safetensors"));
    let seeds = parse_seeds(cli.get("seeds").unwrap_or("1"))?;
    let mut list = entries_for_seeds(preset, &teacher, &seeds);
    if given_teacher.is_some() {
        list.retain(|e| e.role != Role::Teacher);
    }
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
    for (i, e) in list.iter().enumerate() {
        println!(
            "\n=== sweep {name} [{}/{}] {} ({}, {:.2}x) — {:.0} min so far",
            i + 1,
            list.len(),
            e.name,
            e.role.label(),
            e.rate,
            t0.elapsed().as_secs_f64() / 60.0
        );
        if let Err(err) = run_entry(e, &dir, &forward, &configs) {
            eprintln!("sweep: {err}");
            failed.push(err);
            if e.role == Role::Teacher {
                break;
            }
        }
    }
    let mut all = entries_for_seeds(preset, &teacher, &seeds);
    if given_teacher.is_some() {
        all.retain(|e| e.role != Role::Teacher);
    }
    let results = collect(&all, &dir)?;
    let md = results_md(preset, &dir, &results);
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

/// Mean, sample standard deviation (NaN for one value) and count of a cell's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stat {
    /// The statistics of the finite values of `v` (a figure not measured is NaN and left
    /// out); `None` if there is none.
    pub fn of(v: &[f64]) -> Option<Stat> {
        let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        Some(Stat { mean, sd, n })
    }

    /// `mean ± sd` in percent (`mean` alone for one seed).
    pub fn pct(&self) -> String {
        if self.n > 1 {
            format!("{:.2} ± {:.2}", 100.0 * self.mean, 100.0 * self.sd)
        } else {
            format!("{:.2}", 100.0 * self.mean)
        }
    }
}

/// A figure of the cell `role` at `rate` over its seeds.
fn cell_stat(
    results: &[(&Entry, Option<Summary>)],
    role: Role,
    rate: f64,
    pick: fn(&Summary) -> f64,
) -> Option<Stat> {
    let v: Vec<f64> = results
        .iter()
        .filter(|(e, _)| e.role == role && (e.rate - rate).abs() < 1e-9)
        .filter_map(|(_, s)| s.as_ref().map(pick))
        .collect();
    Stat::of(&v)
}

/// Ours against our ADMM at `rate`, on the means over their seeds: the verdict line and
/// the natural / robust differences for the table; `None` unless both cells have runs.
/// The robust figure is the worst case with AutoAttack and Square when every run of both
/// cells has it, else PGD-40. A tie is a difference within the larger of the two
/// standard deviations, or within [`TIE_PTS`] when a cell has one seed.
fn verdict(
    results: &[(&Entry, Option<Summary>)],
    rate: f64,
    steps: usize,
) -> Option<(String, String)> {
    let nat = |role| cell_stat(results, role, rate, |s| s.dense.clean);
    let with_aa = results
        .iter()
        .filter(|(e, _)| matches!(e.role, Role::Ours | Role::Admm) && (e.rate - rate).abs() < 1e-9)
        .filter_map(|(_, s)| s.as_ref())
        .all(|s| s.dense.worst_aa.is_finite());
    let pick: fn(&Summary) -> f64 = if with_aa {
        |s| s.dense.worst_aa
    } else {
        |s| s.dense.pgd
    };
    let (on, oa) = (nat(Role::Ours)?, nat(Role::Admm)?);
    let (ro, ra) = (
        cell_stat(results, Role::Ours, rate, pick)?,
        cell_stat(results, Role::Admm, rate, pick)?,
    );
    let (dn, dp) = (100.0 * (on.mean - oa.mean), 100.0 * (ro.mean - ra.mean));
    let (band, why) = if ro.n > 1 && ra.n > 1 {
        let band = 100.0 * ro.sd.max(ra.sd);
        (band, format!("{band:.2} points, the larger seed sd"))
    } else {
        (TIE_PTS, format!("{TIE_PTS} points, one run's noise"))
    };
    let on_what = if with_aa {
        format!(
            "the worst case with AutoAttack and Square (first {})",
            crate::pipeline::AA_IMAGES
        )
    } else {
        format!("PGD-{steps}")
    };
    let seeds = if ro.n > 1 || ra.n > 1 {
        format!(
            ", means of {} and {} seeds: ours {}, ADMM {}",
            ro.n,
            ra.n,
            ro.pct(),
            ra.pct()
        )
    } else {
        String::new()
    };
    let line = format!(
        "ours {} our ADMM on {on_what} ({dp:+.2} points{seeds}); natural {dn:+.2} points ({}).",
        // (The 1e-9 keeps a difference of exactly the band, as printed, a tie.)
        if dp > band + 1e-9 {
            "beats".to_string()
        } else if dp >= -band - 1e-9 {
            format!("ties (within {why}) with")
        } else {
            "does NOT beat".to_string()
        },
        if dn >= 0.0 {
            "not lower"
        } else if dn >= -0.5 {
            "lower, within the 0.5-point allowance"
        } else {
            "MORE than 0.5 points lower"
        }
    );
    Some((line, format!("{dn:+.2} / {dp:+.2}")))
}

/// The table of every cell over its seeds: mean ± sd of each figure and the count.
fn cells_table(r: &mut String, results: &[(&Entry, Option<Summary>)]) {
    let mut cells: Vec<(&str, Role)> = vec![];
    for (e, s) in results {
        if s.is_some() && !cells.iter().any(|c| c.0 == e.cell) {
            cells.push((&e.cell, e.role));
        }
    }
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        r,
        "\n## Every cell over its seeds (%, mean ± sd; dense masked model)\n"
    );
    let _ = writeln!(
        r,
        "| cell | method | seeds | natural | PGD-40 | APGD-CE | AutoAttack, first {aa} | Square, first {aa} | worst case with both, first {aa} |",
        aa = crate::pipeline::AA_IMAGES
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|---|");
    let picks: [fn(&Summary) -> f64; 6] = [
        |s| s.dense.clean,
        |s| s.dense.pgd,
        |s| s.dense.apgd,
        |s| s.dense.autoattack,
        |s| s.dense.square,
        |s| s.dense.worst_aa,
    ];
    for (cell, role) in cells {
        let in_cell: Vec<&Summary> = results
            .iter()
            .filter(|(e, _)| e.cell == cell)
            .filter_map(|(_, s)| s.as_ref())
            .collect();
        let figs: Vec<String> = picks
            .iter()
            .map(|pick| {
                let v: Vec<f64> = in_cell.iter().map(|s| pick(s)).collect();
                Stat::of(&v).map_or("-".into(), |st| st.pct())
            })
            .collect();
        let _ = writeln!(
            r,
            "| {cell} | {} | {} | {} |",
            role.label(),
            in_cell.len(),
            figs.join(" | ")
        );
    }
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

/// Measured bytes, or "-" for runs trained before the counting allocator was there.
fn bytes_or_dash(b: f64) -> String {
    if b > 0.0 {
        format!("{b:.0}")
    } else {
        "-".into()
    }
}

fn mib(b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}", b / (1 << 20) as f64)
    } else {
        "-".into()
    }
}

const CSV_HEADER: &str = "name,role,target_rate,rate,nnz,prunable,params,natural,fgsm,pgd40,apgd_ce,pgd40_from_teacher,worst,autoattack_1000,square_1000,worst_1000_with_autoattack,sparse_natural,sparse_fgsm,sparse_pgd40,sparse_apgd_ce,dense_bytes,sparse_bytes,latency_us,epochs,train_seconds,extra_state_bytes,compressor_heap_peak_bytes,peak_rss_bytes";

fn csv_fields(e: &Entry, s: &Summary) -> Vec<String> {
    let d = &s.dense;
    let sp = &s.sparse;
    let f = &s.facts;
    vec![
        e.name.clone(),
        format!("{:?}", e.role),
        e.rate.to_string(),
        format!("{:.4}", s.rate()),
        s.nnz.to_string(),
        s.prunable.to_string(),
        s.params.to_string(),
        format!("{:.4}", d.clean),
        format!("{:.4}", d.fgsm),
        format!("{:.4}", d.pgd),
        format!("{:.4}", d.apgd),
        format!("{:.4}", d.transfer),
        format!("{:.4}", d.worst),
        format!("{:.4}", d.autoattack),
        format!("{:.4}", d.square),
        format!("{:.4}", d.worst_aa),
        format!("{:.4}", sp.clean),
        format!("{:.4}", sp.fgsm),
        format!("{:.4}", sp.pgd),
        format!("{:.4}", sp.apgd),
        s.dense_bytes.to_string(),
        s.sparse_bytes.to_string(),
        format!("{:.2}", s.latency_us),
        f.epochs.to_string(),
        format!("{:.1}", f.train_seconds),
        format!("{:.0}", f.extra_state_bytes),
        format!("{:.0}", f.heap_peak),
        format!("{:.0}", f.peak_rss),
    ]
}

pub fn results_csv(results: &[(&Entry, Option<Summary>)]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for (e, sum) in results {
        if let Some(sum) = sum {
            let _ = writeln!(s, "{}", csv_fields(e, sum).join(","));
        }
    }
    s
}

pub fn results_json(p: &Preset, results: &[(&Entry, Option<Summary>)]) -> String {
    let keys: Vec<&str> = CSV_HEADER.split(',').collect();
    let mut rows = vec![];
    for (e, sum) in results {
        let Some(sum) = sum else { continue };
        let vals = csv_fields(e, sum);
        let mut obj: Vec<String> = keys
            .iter()
            .zip(&vals)
            .map(|(k, v)| {
                if *k == "name" || *k == "role" {
                    format!("\"{k}\":\"{v}\"")
                } else if v == "NaN" {
                    // Not measured (the sparse attacks of an unpruned model).
                    format!("\"{k}\":null")
                } else {
                    format!("\"{k}\":{v}")
                }
            })
            .collect();
        let sweep: Vec<String> = sum
            .sweep
            .iter()
            .map(|(e, a)| format!("[{e},{a:.4}]"))
            .collect();
        obj.push(format!("\"eps_sweep\":[{}]", sweep.join(",")));
        rows.push(format!("{{{}}}", obj.join(",")));
    }
    format!(
        "{{\"preset\":\"{}\",\"dataset\":\"{}\",\"runs\":[\n{}\n]}}\n",
        p.name,
        p.dataset,
        rows.join(",\n")
    )
}

pub fn results_md(p: &Preset, dir: &Path, results: &[(&Entry, Option<Summary>)]) -> String {
    let protocol = Protocol::for_dataset(p.dataset);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Sweep {}: lenet_adv:{} on {}\n",
        p.name, p.width, p.dataset
    );
    let pipe = TrainConfig::pipeline();
    let _ = writeln!(
        r,
        "Budget, the same for every compression method: start from the teacher, {} epochs ({} of pruning / ADMM, then {} of debiasing / masked retraining), {} examples, Adam lr {} cosine, batch {}, global budget, seed 1. Ours: distillation a = 0.5, t = {}, teacher on the adversarial batch (`--teacher-input {OURS_TEACHER_INPUT}`); below {LATE_WINDOW_BELOW_RATE}x the prox stays dense for the first {LATE_RAMP_START} of the pruning epochs then tightens over the next {LATE_RAMP} (`--ramp-start {LATE_RAMP_START} --ramp {LATE_RAMP}`), at higher rates it tightens from the start over the first {DEFAULT_RAMP} (method.md's default); both chosen on a validation split. The ablations keep ours' schedule. ADMM: `{ADMM}`. Teacher and dense small nets: {TEACHER_EPOCHS} epochs from scratch, Adam 1e-3, eps ramped over 3 epochs. Evaluation: full test set, eps {}, FGSM, PGD-{} (step {}) with {} restarts, APGD-CE-{}; robust accuracy counts an image only if it is right clean and attacked. Run folder: `{}`; command: `cargo xtask sweep --preset {}`.\n",
        pipe.epochs,
        pipe.epochs - pipe.finetune,
        pipe.finetune,
        AdvTraining::for_dataset(p.dataset),
        pipe.lr,
        pipe.batch,
        pipe.temperature,
        protocol.eps,
        protocol.steps,
        protocol.step_size,
        crate::pipeline::RESTARTS,
        protocol.apgd_steps,
        // Relative to the workspace when inside it, so the file reads the same anywhere.
        dir.strip_prefix(workspace_root()).unwrap_or(dir).display(),
        p.name
    );
    let _ = writeln!(
        r,
        "## All runs (%; dense masked model, then the exported sparse model)\n"
    );
    let _ = writeln!(r, "| run | method | rate | natural | FGSM | PGD-{} | APGD-CE | PGD-{0} from the teacher | worst case | AutoAttack, first {aa} | Square-5000, first {aa} | worst case with both, first {aa} | sparse: natural / PGD / APGD | sparse bytes | batch-1 µs | train min | compressor state B (counted / measured peak) | peak RSS MiB |", protocol.steps, aa = crate::pipeline::AA_IMAGES);
    let _ = writeln!(
        r,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut missing = vec![];
    for (e, s) in results {
        let Some(s) = s else {
            missing.push(e.name.as_str());
            continue;
        };
        let _ = writeln!(
            r,
            "| {} | {} | {:.2}x | {} | {} | **{}** | {} | {} | {} | {} | {} | **{}** | {} / {} / {} | {} | {:.1} | {:.1} | {:.0} / {} | {} |",
            e.name,
            e.role.label(),
            e.shown_rate(s),
            pct(s.dense.clean),
            pct(s.dense.fgsm),
            pct(s.dense.pgd),
            pct(s.dense.apgd),
            pct(s.dense.transfer),
            pct(s.dense.worst),
            pct(s.dense.autoattack),
            pct(s.dense.square),
            pct(s.dense.worst_aa),
            pct(s.sparse.clean),
            pct(s.sparse.pgd),
            pct(s.sparse.apgd),
            s.sparse_bytes,
            s.latency_us,
            s.facts.train_seconds / 60.0,
            s.facts.extra_state_bytes,
            bytes_or_dash(s.facts.heap_peak),
            mib(s.facts.peak_rss)
        );
    }
    let _ = writeln!(r, "\nThe worst case counts an image only if it survives every attack on the dense model: FGSM, PGD and APGD-CE, and PGD crafted on the teacher where that column has a figure (runs evaluated before the transfer check have none). On the first {} test images, AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square-5000 in sequence) and the gradient-free Square Attack on its own join it; the verdicts below are taken on that worst case where both runs have it (runs evaluated before AutoAttack existed have none: their verdicts say PGD).", crate::pipeline::AA_IMAGES);
    let masked: Vec<String> = results
        .iter()
        .filter(|(_, s)| {
            s.as_ref()
                .and_then(|s| crate::pipeline::masking_suspected(&s.dense))
                .unwrap_or(false)
        })
        .map(|(e, _)| e.name.clone())
        .collect();
    if !masked.is_empty() {
        let _ = writeln!(r, "\n**Gradient masking suspected** (the attack crafted on the teacher beats every white-box one by more than {} points, or Square beats them by more than {} on the first {} images): {}.", crate::pipeline::MASKING_PTS, crate::pipeline::SQUARE_MASKING_PTS, crate::pipeline::AA_IMAGES, masked.join(", "));
    }
    if !missing.is_empty() {
        let _ = writeln!(r, "\nNot (yet) run or failed: {}.", missing.join(", "));
    }
    // The table side by side with Ye et al.'s.
    let _ = writeln!(
        r,
        "\n## Natural / PGD-{} (%) beside Ye et al.'s Table 2\n",
        protocol.steps
    );
    let _ = writeln!(r, "| column | rate | Ye et al. (published ADMM) | our ADMM | ours: prox + distillation | magnitude | dense small from scratch | ours - our ADMM (natural / PGD) |");
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
    // Each cell as natural / PGD-40 over its seeds (mean ± sd where there are several).
    let np = |role: Role, rate: f64| {
        let nat = cell_stat(results, role, rate, |s| s.dense.clean);
        let pgd = cell_stat(results, role, rate, |s| s.dense.pgd);
        match (nat, pgd) {
            (Some(n), Some(a)) => format!("{} / {}", n.pct(), a.pct()),
            _ => "-".into(),
        }
    };
    if results
        .iter()
        .any(|(e, s)| e.role == Role::Teacher && s.is_some())
    {
        let publ = p.published.as_ref().map_or("-".into(), |p| {
            format!("{:.2} / {:.2}", p.teacher.0, p.teacher.1)
        });
        let _ = writeln!(
            r,
            "| dense w{} (teacher) | 1x | {publ} | | {} | | | |",
            p.width,
            np(Role::Teacher, 1.0)
        );
    }
    let mut verdicts = vec![];
    for (i, &w) in p.smaller.iter().enumerate() {
        let rate = p.rate_to(w);
        let publ = p
            .published
            .as_ref()
            .and_then(|p| p.columns.get(i).copied())
            .map_or("-".into(), |(n, a)| format!("{n:.2} / {a:.2}"));
        let diff = match verdict(results, rate, protocol.steps) {
            Some((line, diff)) => {
                verdicts.push(format!("- ->{w} ({rate}x): {line}"));
                diff
            }
            None => "-".into(),
        };
        let _ = writeln!(
            r,
            "| ->{w} | {rate}x | {publ} | {} | **{}** | {} | {} | {diff} |",
            np(Role::Admm, rate),
            np(Role::Ours, rate),
            np(Role::Magnitude, rate),
            np(Role::DenseSmall, rate),
        );
    }
    if !verdicts.is_empty() {
        let _ = writeln!(r, "\n{}", verdicts.join("\n"));
    }
    cells_table(&mut r, results);
    // Memory.
    let _ = writeln!(r, "\n## Training memory (per run, measured)\n");
    let _ = writeln!(r, "| run | compressor state counted (B) | compressor heap at most, measured (B) | all training state (B) | peak RSS (MiB) |");
    let _ = writeln!(r, "|---|---|---|---|---|");
    for (e, s) in results {
        if let (Some(s), Role::Ours | Role::Admm | Role::Magnitude) = (s, e.role) {
            let f = &s.facts;
            let _ = writeln!(
                r,
                "| {} | {:.0} | {} | {:.0} | {} |",
                e.name,
                f.extra_state_bytes,
                bytes_or_dash(f.heap_peak),
                f.state_total_bytes,
                mib(f.peak_rss)
            );
        }
    }
    // Ablations, beside ours (rows without ablations, such as w8, have no table).
    if results
        .iter()
        .any(|(e, _)| matches!(e.role, Role::NoDistill | Role::NoAdv))
    {
        let _ = writeln!(r, "\n## Ablations of ours\n");
        let _ = writeln!(r, "| run | natural | PGD-{} | APGD-CE |", protocol.steps);
        let _ = writeln!(r, "|---|---|---|---|");
        for (e, s) in results {
            if let (Some(s), Role::Ours | Role::NoDistill | Role::NoAdv) = (s, e.role) {
                let _ = writeln!(
                    r,
                    "| {} ({}) | {} | {} | {} |",
                    e.name,
                    e.role.label(),
                    pct(s.dense.clean),
                    pct(s.dense.pgd),
                    pct(s.dense.apgd)
                );
            }
        }
    }
    // Eps sweeps.
    let _ = writeln!(
        r,
        "\n## Eps sweep (PGD-{}, first {} test images; gradient-masking check)\n",
        protocol.steps,
        crate::pipeline::SWEEP_IMAGES
    );
    if let Some((_, Some(s0))) = results.iter().find(|(_, s)| s.is_some()) {
        let _ = writeln!(
            r,
            "| run | {} |",
            s0.sweep
                .iter()
                .map(|(e, _)| format!("eps {e:.3}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(r, "|---|{}", "---|".repeat(s0.sweep.len()));
    }
    for (e, s) in results {
        if let Some(s) = s {
            let _ = writeln!(
                r,
                "| {} | {} |",
                e.name,
                s.sweep
                    .iter()
                    .map(|(_, a)| pct(*a))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    r
}

/// Which accuracy a panel shows.
type Pick = fn(&Summary) -> f64;

/// Two panels (PGD accuracy, natural accuracy) against compression rate (log axis), one
/// line per method, the teacher and the dense small nets as separate markers.
pub fn results_svg(p: &Preset, results: &[(&Entry, Option<Summary>)]) -> String {
    // Drawn in this order: ours last, on top.
    const SERIES: [(Role, &str); 6] = [
        (Role::NoAdv, "#8c564b"),
        (Role::NoDistill, "#ff7f0e"),
        (Role::DenseSmall, "#9467bd"),
        (Role::Magnitude, "#2ca02c"),
        (Role::Admm, "#1f77b4"),
        (Role::Ours, "#d62728"),
    ];
    let pts = |role: Role, pick: fn(&Summary) -> f64| -> Vec<(f64, f64)> {
        let v: Vec<(&&Entry, f64, f64)> = results
            .iter()
            .filter(|(e, _)| {
                e.role == role
                    || (e.role == Role::Teacher
                        && role != Role::DenseSmall
                        && role != Role::NoAdv
                        && role != Role::NoDistill)
            })
            .filter_map(|(e, s)| s.as_ref().map(|s| (e, e.shown_rate(s), 100.0 * pick(s))))
            .collect();
        // One point per cell: the mean over its seeds.
        let mut cells: Vec<(&str, Vec<(f64, f64)>)> = vec![];
        for (e, x, y) in v {
            match cells.iter_mut().find(|c| c.0 == e.cell) {
                Some(c) => c.1.push((x, y)),
                None => cells.push((&e.cell, vec![(x, y)])),
            }
        }
        let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            v.iter().map(f).sum::<f64>() / v.len() as f64
        };
        let mut v: Vec<(f64, f64)> = cells
            .iter()
            .map(|(_, p)| (mean(p, |q| q.0), mean(p, |q| q.1)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let pgd = format!(
        "PGD-{} accuracy (%)",
        Protocol::for_dataset(p.dataset).steps
    );
    let panels: [(&str, Pick); 2] = [
        (&pgd, |s| s.dense.pgd),
        ("natural accuracy (%)", |s| s.dense.clean),
    ];
    let (pw, ph, left, top, gap) = (380.0, 300.0, 60.0, 50.0, 70.0);
    let (w, h) = (left + 2.0 * pw + gap + 30.0, top + ph + 140.0);
    let mut s = Svg::new(w, h);
    let title = format!(
        "{}: lenet_adv:{} on {}, accuracy against compression rate",
        p.name, p.width, p.dataset
    );
    s.title(w / 2.0, 22.0, &title);
    let max_rate = results.iter().map(|(e, _)| e.rate).fold(2.0, f64::max);
    let x_hi = max_rate.log2().ceil().max(1.0);
    for (k, (name, pick)) in panels.iter().enumerate() {
        let x0 = left + k as f64 * (pw + gap);
        // The scale fits the adversarially trained runs; the no-adversarial ablation may
        // fall below it and is then drawn on the axis with its value written beside.
        let all: Vec<f64> = SERIES
            .iter()
            .filter(|(role, _)| *role != Role::NoAdv)
            .flat_map(|(role, _)| pts(*role, *pick))
            .map(|q| q.1)
            .collect();
        // Fashion-MNIST's accuracies sit far below 100, so the top follows the data too
        // (every run's, so that none is drawn above the panel).
        let lo = all.iter().copied().fold(100.0, f64::min);
        let hi = SERIES
            .iter()
            .flat_map(|(role, _)| pts(*role, *pick))
            .map(|q| q.1)
            .fold(lo, f64::max);
        let step = nice_step((hi - lo).max(1.0), 5.0);
        let y_lo = ((lo / step).floor() * step).max(0.0);
        let y_hi = ((hi / step).floor() * step + step).min(100.0);
        let px = |rate: f64| x0 + pw * rate.max(1.0).log2() / x_hi;
        let py = |acc: f64| top + ph * (1.0 - (acc.max(y_lo) - y_lo) / (y_hi - y_lo).max(1e-9));
        s.frame(x0, top, pw, ph);
        let mut y = y_lo;
        while y <= y_hi + 1e-9 {
            s.h_grid(x0, x0 + pw, py(y), "#ddd", &format!("{y}"));
            y += step;
        }
        for i in 0..=(x_hi as i32) {
            let r = 2f64.powi(i);
            s.v_grid(px(r), top, top + ph, 16.0, "#ddd", &format!("{r}x"));
        }
        s.text(x0 + pw / 2.0, top - 8.0, "middle", name);
        s.text(
            x0 + pw / 2.0,
            top + ph + 34.0,
            "middle",
            "compression rate (prunable weights / non-zero; log scale)",
        );
        for (role, color) in SERIES {
            let v = pts(role, *pick);
            if v.is_empty() {
                continue;
            }
            if role != Role::DenseSmall {
                s.polyline(v.iter().map(|&(x, y)| (px(x), py(y))), color, "");
            }
            for &(x, y) in &v {
                s.dot(px(x), py(y), 3.5, color);
                if y < y_lo {
                    let attrs = format!(r#"fill="{color}""#);
                    let label = format!("{y:.1} (off scale)");
                    s.text_with(px(x) - 6.0, py(y) - 6.0, "end", &attrs, &label);
                }
            }
        }
    }
    // The legend lists only the methods that have a finished run (w8 has no ablations).
    let shown = SERIES
        .iter()
        .filter(|(role, _)| results.iter().any(|(e, s)| e.role == *role && s.is_some()));
    for (i, (role, color)) in shown.enumerate() {
        let (lx, ly) = (
            left + (i % 2) as f64 * 400.0,
            top + ph + 58.0 + (i / 2) as f64 * 18.0,
        );
        s.rect(lx, ly - 4.0, 14.0, 4.0, color);
        s.text(lx + 20.0, ly, "start", role.label());
    }
    s.text_with(
        left,
        h - 8.0,
        "start",
        r#"font-size="11""#,
        "Lines start at the dense teacher (1x). Dense small nets sit at the rate of their parameter count.",
    );
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_rates_are_the_parameter_ratios_of_table_2() {
        let w4 = &PRESETS[0];
        assert_eq!(w4.rate_to(1), 15.31);
        assert_eq!(w4.rate_to(2), 3.94);
        let w8 = &PRESETS[1];
        assert_eq!(w8.rate_to(1), 60.8);
        assert_eq!(w8.rate_to(4), 3.97);
        let names: Vec<String> = entries(w4, Path::new("t.safetensors"))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "teacher",
                "prox-r15.31",
                "admm-r15.31",
                "magnitude-r15.31",
                "prox-r3.94",
                "admm-r3.94",
                "magnitude-r3.94",
                "prox-alpha0-r15.31",
                "prox-advnone-r15.31",
                "prox-alpha0-r3.94",
                "prox-advnone-r3.94",
                "dense-w1",
                "dense-w2"
            ]
        );
        // The w8 row runs the methods at three rates but not the ablations.
        let names: Vec<String> = entries(w8, Path::new("t.safetensors"))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 1 + 3 * 3 + 3, "{names:?}");
        assert!(names
            .iter()
            .all(|n| !n.contains("alpha0") && !n.contains("advnone")));
        assert_eq!(names[12], "dense-w4");
    }

    /// Ours and both ablations share one schedule at each rate; each ablation differs
    /// from ours in the one thing it removes (and the no-adversarial run's teacher sees
    /// the clean batch, the only one there is). The baselines keep method.md's defaults.
    #[test]
    fn ablations_differ_from_ours_in_one_setting() {
        let all = entries(&PRESETS[0], Path::new("t.safetensors"));
        let find = |n: &str| &all.iter().find(|e| e.name == n).unwrap().cfg;
        for (rate, window) in [
            ("3.94", (LATE_RAMP_START, LATE_RAMP)),
            ("15.31", (0.0, DEFAULT_RAMP)),
        ] {
            let ours = find(&format!("prox-r{rate}"));
            assert_eq!(
                (
                    (ours.ramp_start, ours.ramp),
                    ours.teacher_input.as_str(),
                    ours.alpha
                ),
                (window, OURS_TEACHER_INPUT, 0.5),
                "{rate}"
            );
            let no_distill = TrainConfig {
                alpha: 0.5,
                ..find(&format!("prox-alpha0-r{rate}")).clone()
            };
            assert_eq!(&no_distill, ours);
            let advnone = find(&format!("prox-advnone-r{rate}"));
            let no_adv = TrainConfig {
                adv: ours.adv,
                teacher_input: OURS_TEACHER_INPUT.into(),
                ..advnone.clone()
            };
            assert_eq!(&no_adv, ours);
            assert_eq!(advnone.teacher_input, "clean");
            for base in ["admm", "magnitude"] {
                let c = find(&format!("{base}-r{rate}"));
                assert_eq!((c.ramp_start, c.teacher_input.as_str()), (0.0, "clean"));
            }
        }
    }

    /// The window is the late one below 8x and method.md's default from 8x on, so every
    /// preset's mild rates (about 4x) and high rates (15x and more) fall on the side the
    /// validation split chose for them.
    #[test]
    fn ours_window_follows_the_rate() {
        assert_eq!(ours_window(3.94), (LATE_RAMP_START, LATE_RAMP));
        assert_eq!(ours_window(7.99), (LATE_RAMP_START, LATE_RAMP));
        assert_eq!(ours_window(8.0), (0.0, DEFAULT_RAMP));
        assert_eq!(ours_window(60.8), (0.0, DEFAULT_RAMP));
        for p in &PRESETS {
            for e in entries(p, Path::new("t"))
                .iter()
                .filter(|e| e.role == Role::Ours)
            {
                let late = e.rate < 5.0;
                assert_eq!(e.cfg.ramp_start > 0.0, late, "{} {}", p.name, e.name);
            }
        }
    }

    /// Every run's settings survive config.txt (resume compares them).
    #[test]
    fn entry_configs_round_trip_through_text() {
        for p in &PRESETS {
            for e in entries(p, Path::new("/x/teacher/model.safetensors")) {
                let mut back = TrainConfig::default();
                for line in e.cfg.to_text().lines().filter(|l| !l.starts_with('#')) {
                    let (k, v) = line.split_once('=').unwrap();
                    back.set(k.trim(), v.trim()).unwrap();
                }
                assert_eq!(back, e.cfg, "{} {}", p.name, e.name);
            }
        }
    }

    /// `--plan` trains nothing, and writes every listed run's config, each the preset's
    /// settings for that run (what a by-hand variant starts from).
    #[test]
    fn plan_writes_each_runs_config_and_trains_nothing() {
        let dir = std::env::temp_dir().join(format!("rcc-sweep-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args: Vec<String> = [
            "--preset",
            "table2-w4",
            "--out",
            dir.to_str().unwrap(),
            "--only",
            "prox-r3.94",
            "--plan",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(run(&args).unwrap(), ExitCode::SUCCESS);
        let all = entries(&PRESETS[0], &dir.join("teacher").join("model.safetensors"));
        let mut written: Vec<String> = std::fs::read_dir(dir.join("configs"))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(written, ["prox-r3.94.txt", "teacher.txt"]);
        for e in all
            .iter()
            .filter(|e| e.name == "teacher" || e.name == "prox-r3.94")
        {
            let mut back = TrainConfig::default();
            back.apply_file(&dir.join("configs").join(format!("{}.txt", e.name)))
                .unwrap();
            assert_eq!(back, e.cfg, "{}", e.name);
        }
        // Nothing ran: no run folder, no results.
        assert!(!dir.join("teacher").exists() && !dir.join("results.md").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summaries_round_trip_and_tables_render() {
        let e = &entries(&PRESETS[0], Path::new("t"))[1];
        let mut s = Summary {
            prunable: 1000,
            nnz: 65,
            params: 1100,
            sweep: vec![(0.0, 0.99), (0.3, 0.9)],
            ..Summary::default()
        };
        s.dense.clean = 0.98;
        s.dense.pgd = 0.9;
        s.dense.apgd = 0.89;
        // The transferred attack beats the white-box ones: flagged under the table.
        s.dense.transfer = 0.5;
        let back = Summary::parse(&s.to_text()).unwrap();
        assert_eq!(back.to_text(), s.to_text());
        let results = vec![(e, Some(back))];
        let md = results_md(&PRESETS[0], Path::new("d"), &results);
        assert!(
            md.contains("| prox-r15.31 |")
                && md.contains("15.38x")
                && md.contains("| 89.00 | 50.00 |")
                && md.contains("masking suspected** (")
                && md.contains("images): prox-r15.31."),
            "{md}"
        );
        // Every CSV row has a value for every header field.
        let csv = results_csv(&results);
        let widths: Vec<usize> = csv.lines().map(|l| l.split(',').count()).collect();
        assert_eq!(widths, vec![CSV_HEADER.split(',').count(); 2], "{csv}");
        assert!(results_json(&PRESETS[0], &results).contains("\"pgd40_from_teacher\":0.5000"));
        let svg = results_svg(&PRESETS[0], &results);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // The ablation table only where the row has ablations.
        assert!(!md.contains("Ablations of ours"), "{md}");
        let all = entries(&PRESETS[0], Path::new("t"));
        let ablation = all.iter().find(|e| e.role == Role::NoDistill).unwrap();
        let with_ablation = vec![results[0].clone(), (ablation, None)];
        let md = results_md(&PRESETS[0], Path::new("d"), &with_ablation);
        assert!(md.contains("## Ablations of ours"), "{md}");
        assert!(Summary::parse("nonsense = 1").is_err());
    }

    /// `--seeds`: seed 1 keeps the one-seed names, the others get `-sS`; the teacher is
    /// shared; each cell's figures give mean ± sd; the verdict is taken on the means,
    /// a tie within the larger sd.
    #[test]
    fn seeds_make_cells_with_mean_and_sd() {
        assert_eq!(parse_seeds("1, 2,3,2").unwrap(), vec![1, 2, 3]);
        assert!(parse_seeds("1,x").is_err() && parse_seeds(" ,").is_err());
        let all = entries_for_seeds(&PRESETS[0], Path::new("t"), &[1, 2, 3]);
        let one = entries(&PRESETS[0], Path::new("t"));
        assert_eq!(all.len(), 1 + 3 * (one.len() - 1));
        assert_eq!(all.iter().filter(|e| e.role == Role::Teacher).count(), 1);
        for e in one.iter().filter(|e| e.role != Role::Teacher) {
            for seed in [1u64, 2, 3] {
                let name = if seed == 1 {
                    e.name.clone()
                } else {
                    format!("{}-s{seed}", e.name)
                };
                let s = all.iter().find(|x| x.name == name).unwrap();
                assert_eq!((s.cell.as_str(), s.cfg.seed), (e.name.as_str(), seed));
                assert_eq!(
                    TrainConfig {
                        seed: 1,
                        ..s.cfg.clone()
                    },
                    e.cfg
                );
            }
        }
        let st = Stat::of(&[0.90, 0.92, f64::NAN, 0.94]).unwrap();
        assert_eq!(st.n, 3);
        assert!((st.mean - 0.92).abs() < 1e-12 && (st.sd - 0.02).abs() < 1e-12);
        assert_eq!(st.pct(), "92.00 ± 2.00");
        assert!(Stat::of(&[0.5]).unwrap().sd.is_nan() && Stat::of(&[f64::NAN]).is_none());
        // Three seeds each of ours and ADMM at 15.31x: the verdict on the means.
        let cell = |role: Role| -> Vec<&Entry> {
            all.iter()
                .filter(|e| e.role == role && (e.rate - 15.31).abs() < 1e-9)
                .collect()
        };
        let md_for = |ours: [f64; 3], admm: [f64; 3]| {
            let mut results = vec![];
            for (role, figs) in [(Role::Ours, ours), (Role::Admm, admm)] {
                for (e, w) in cell(role).into_iter().zip(figs) {
                    let mut s = Summary::default();
                    (s.dense.clean, s.dense.pgd, s.dense.worst_aa) = (0.97, 0.9, w);
                    results.push((e, Some(s)));
                }
            }
            results_md(&PRESETS[0], Path::new("d"), &results)
        };
        let line = |md: &str| {
            md.lines()
                .find(|l| l.starts_with("- ->1"))
                .unwrap()
                .to_string()
        };
        // Means 0.85 and 0.84, sds 0.01 and 0.005: +1.00 is within 1.00 -> a tie.
        let md = md_for([0.84, 0.85, 0.86], [0.835, 0.84, 0.845]);
        let v = line(&md);
        assert!(
            v.contains("ours ties (within 1.00 points, the larger seed sd)")
                && v.contains("means of 3 and 3 seeds: ours 85.00 ± 1.00, ADMM 84.00 ± 0.50")
                && v.contains("AutoAttack and Square"),
            "{v}"
        );
        assert!(
            md.contains("| prox-r15.31 | ours: prox + distillation | 3 | 97.00 ± 0.00 |"),
            "{md}"
        );
        // The same means with a tighter spread: a win.
        let v = line(&md_for([0.849, 0.85, 0.851], [0.839, 0.84, 0.841]));
        assert!(
            v.contains("ours beats our ADMM") && v.contains("+1.00"),
            "{v}"
        );
    }

    /// The verdict lines under the side-by-side table: the PGD-40 lead (a tie within
    /// [`TIE_PTS`]) and the 0.5-point natural-accuracy allowance of issue 6.
    #[test]
    fn verdicts_state_the_lead_and_the_allowance() {
        let all = entries(&PRESETS[0], Path::new("t"));
        let find = |n: &str| all.iter().find(|e| e.name == n).unwrap();
        let summary = |clean: f64, pgd: f64| {
            let mut s = Summary::default();
            (s.dense.clean, s.dense.pgd) = (clean, pgd);
            s
        };
        let verdict = |ours: Summary, admm: Summary| {
            let results = vec![
                (find("prox-r15.31"), Some(ours)),
                (find("admm-r15.31"), Some(admm)),
            ];
            let md = results_md(&PRESETS[0], Path::new("d"), &results);
            md.lines()
                .find(|l| l.starts_with("- ->1"))
                .unwrap_or_else(|| panic!("no verdict in {md}"))
                .to_string()
        };
        let v = verdict(summary(0.97, 0.90), summary(0.96, 0.88));
        assert!(
            v.contains("ours beats") && v.contains("+2.00") && v.contains("not lower"),
            "{v}"
        );
        let v = verdict(summary(0.97, 0.90), summary(0.973, 0.91));
        assert!(
            v.contains("does NOT beat") && v.contains("lower, within"),
            "{v}"
        );
        let v = verdict(summary(0.96, 0.90), summary(0.97, 0.88));
        assert!(v.contains("MORE than 0.5 points lower"), "{v}");
        // Within TIE_PTS either way is a tie, not a win or a loss.
        for admm_pgd in [0.8999, 0.9001, 0.9029, 0.8971] {
            let v = verdict(summary(0.97, 0.90), summary(0.97, admm_pgd));
            assert!(v.contains("ours ties (within 0.3 points"), "{v}");
        }
        let v = verdict(summary(0.97, 0.90), summary(0.97, 0.8969));
        assert!(v.contains("ours beats"), "{v}");
        // With the AutoAttack worst case on both runs, the verdict is taken on it: ahead
        // on PGD-40 but behind there is a loss.
        let (mut o, mut a) = (summary(0.97, 0.90), summary(0.97, 0.88));
        (o.dense.worst_aa, a.dense.worst_aa) = (0.80, 0.81);
        let v = verdict(o, a);
        assert!(
            v.contains("does NOT beat")
                && v.contains("AutoAttack and Square")
                && v.contains("-1.00"),
            "{v}"
        );
    }
}
