//! The end of a compression run (issue 6): the full robustness evaluation of the trained
//! (dense, masked) model *and* of its exported sparse model, a batch-1 latency figure, and
//! the run's `report.md` and `summary.txt`.
//!
//! - Attacks (method.md sections 4 and 5): FGSM, PGD-40 from a random start with
//!   [`RESTARTS`] restarts, and APGD-CE (100 steps, one run), at the dataset's eps, on the whole
//!   test set. The sparse model (`model.sparse.safetensors`, read back through the
//!   validating loader) is attacked through its own input gradients, with the same seed,
//!   so the two evaluations see the same random starts and differ only by float summation
//!   order: they must agree within [`AGREEMENT_PTS`] points, and the report says whether
//!   they do.
//! - When the run has a teacher: PGD-40 crafted on the teacher and judged by the dense
//!   model (one start), the black-box check for gradient masking (a transferred attack
//!   that beats every white-box one means the white-box ones were blocked); the worst
//!   case per image then covers it too.
//! - On the first [`AA_IMAGES`] test images: AutoAttack (standard version: APGD-CE,
//!   APGD-T, FAB-T and Square with 5,000 queries, in sequence) and, on its own, the
//!   gradient-free Square Attack (5,000 queries), on the dense and on the sparse model.
//!   The worst case over those images then includes them (`worst_aa`): the figure that
//!   verdicts are taken on. Square beating the white-box gradient attacks by more than
//!   [`SQUARE_MASKING_PTS`] on the same images also flags gradient masking.
//! - An eps sweep of PGD-40 (step scaled with eps) on the first [`SWEEP_IMAGES`] test
//!   images, for the gradient-masking check: accuracy must fall as eps grows and reach
//!   about 0 at large eps.
//! - `summary.txt` holds the figures as `key = value` lines, for `cargo xtask sweep`.

use crate::eval::{DatasetExamples, Protocol, Settings};
use crate::export;
use crate::train::TrainConfig;
use rcc_attack::{AttackResult, Classifier, Report};
use rcc_data::Dataset;
use rcc_nn::json::{parse_json, Json};
use rcc_nn::Model;
use rcc_sparse::{KernelChoice, SparseModel};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// PGD-40 restarts of the final evaluation (APGD-CE runs once, from a random start, as
/// in AutoAttack's standard version).
pub const RESTARTS: usize = 2;
/// Largest accepted gap (percentage points) between the dense and sparse evaluations.
pub const AGREEMENT_PTS: f64 = 0.1;
/// Test images of the eps sweep, and its first radii in units of the dataset's eps
/// (see [`sweep_radii`] for the rest).
pub const SWEEP_IMAGES: usize = 1000;
pub const SWEEP_FRACTIONS: [f32; 6] = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 4.0 / 3.0, 2.0];
/// The radius at which the sweep stops: at 0.5 every image in [0, 1] is within reach of
/// the constant grey image, so no classifier can keep more than one class right there.
pub const SWEEP_LAST: f32 = 0.5;
/// Seed of every evaluation attack.
const EVAL_SEED: u64 = 0;
const EVAL_BATCH: usize = 500;
/// Test images (the first ones) that AutoAttack and the stand-alone Square Attack run on:
/// 5,000 queries per robust image are too many for the whole set in a pipeline run.
pub const AA_IMAGES: usize = 1000;
/// Points by which Square may beat the best white-box gradient attack (PGD-40, APGD-CE)
/// on the same images before the report flags gradient masking.
pub const SQUARE_MASKING_PTS: f64 = 0.5;
/// Their batch size: five batches of progress lines on 1,000 images.
const AA_BATCH: usize = 200;

/// Accuracies (fractions) of one model under the final protocol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracies {
    pub clean: f64,
    pub fgsm: f64,
    pub pgd: f64,
    pub apgd: f64,
    /// PGD-40 crafted on the run's teacher and judged by this model (one start); NaN
    /// when not run (no teacher, or the sparse model).
    pub transfer: f64,
    /// The worst case per example over every attack run on this model on the whole set.
    pub worst: f64,
    /// On the first [`AA_IMAGES`] test images: AutoAttack, Square on its own, PGD-40 and
    /// APGD-CE (the white-box figures that Square is compared with), and the worst case
    /// per example over every attack run on this model. NaN when not run.
    pub autoattack: f64,
    pub square: f64,
    pub pgd_aa: f64,
    pub apgd_aa: f64,
    pub worst_aa: f64,
    pub seconds: f64,
}

/// The figures of a white-box report and, if run, a transferred one on the same images.
impl Default for Accuracies {
    /// Zeros, except the transfer figure: NaN, "not run" (0 would read as a measured 0%).
    fn default() -> Accuracies {
        Accuracies {
            clean: 0.0,
            fgsm: 0.0,
            pgd: 0.0,
            apgd: 0.0,
            transfer: f64::NAN,
            worst: 0.0,
            autoattack: f64::NAN,
            square: f64::NAN,
            pgd_aa: f64::NAN,
            apgd_aa: f64::NAN,
            worst_aa: f64::NAN,
            seconds: 0.0,
        }
    }
}

/// Per example, on the whole set: robust under PGD-40, under APGD-CE, and under every
/// attack run on the model (the worst case).
#[derive(Clone, Debug, Default)]
pub struct Verdicts {
    pub pgd: Vec<bool>,
    pub apgd: Vec<bool>,
    pub all: Vec<bool>,
}

fn accuracies(report: &Report, transfer: Option<&Report>, seconds: f64) -> (Accuracies, Verdicts) {
    let find = |name: &str| report.attacks.iter().find(|a| a.spec.name() == name);
    let acc = |name: &str| find(name).map_or(f64::NAN, |a: &AttackResult| a.acc);
    let all: Vec<&AttackResult> = report
        .attacks
        .iter()
        .chain(transfer.iter().flat_map(|t| &t.attacks))
        .collect();
    let survivors: Vec<bool> = (0..report.n)
        .map(|i| all.iter().all(|a| a.correct[i]))
        .collect();
    let accuracies = Accuracies {
        clean: report.clean_acc,
        fgsm: acc("fgsm"),
        pgd: acc("pgd"),
        apgd: acc("apgd-ce"),
        transfer: transfer
            .and_then(|t| t.attacks.first())
            .map_or(f64::NAN, |a| a.acc),
        worst: fraction(&survivors),
        seconds,
        ..Accuracies::default()
    };
    let verdicts = Verdicts {
        pgd: find("pgd").map_or(vec![], |a| a.correct.clone()),
        apgd: find("apgd-ce").map_or(vec![], |a| a.correct.clone()),
        all: survivors,
    };
    (accuracies, verdicts)
}

fn fraction(v: &[bool]) -> f64 {
    v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64
}

/// The final attacks of a dataset's protocol.
fn settings(protocol: Protocol, names: Vec<&'static str>) -> Settings {
    Settings {
        protocol,
        names,
        eps: protocol.eps,
        eps_l2: protocol.eps_l2,
        steps: None,
        step_size: None,
        step_size_l2: None,
        restarts: RESTARTS,
        queries: None,
    }
}

/// FGSM, PGD-40 with restarts and APGD-CE on all of `test`, then PGD-40 crafted on
/// `teacher` if given, with progress lines.
pub fn evaluate_robust(
    model: &impl Classifier,
    test: &Dataset,
    protocol: Protocol,
    label: &str,
    teacher: Option<&Model>,
) -> Result<(Accuracies, Verdicts), String> {
    let mut specs = settings(protocol, vec!["fgsm", "pgd"]).specs();
    let mut apgd = settings(protocol, vec!["apgd-ce"]);
    apgd.restarts = 1;
    specs.extend(apgd.specs());
    let t0 = Instant::now();
    eprintln!("evaluating the {label} model on {} test images", test.len());
    let progress = |how: &'static str| {
        move |a: &AttackResult| {
            eprintln!(
                "  {label}: {}{how}: {:.2}% ({:.1} s)",
                a.spec.describe(),
                100.0 * a.acc,
                a.seconds
            )
        }
    };
    let report = rcc_attack::evaluate_with(
        model,
        &DatasetExamples(test),
        &specs,
        EVAL_BATCH,
        EVAL_SEED,
        progress(""),
    )
    .map_err(|e| e.to_string())?;
    let transfer = match teacher {
        None => None,
        Some(t) => {
            let mut s = settings(protocol, vec!["pgd"]);
            s.restarts = 1;
            let r = rcc_attack::evaluate_transfer(
                t,
                model,
                &DatasetExamples(test),
                &s.specs(),
                EVAL_BATCH,
                EVAL_SEED,
                progress(" crafted on the teacher"),
            )
            .map_err(|e| e.to_string())?;
            Some(r)
        }
    };
    Ok(accuracies(
        &report,
        transfer.as_ref(),
        t0.elapsed().as_secs_f64(),
    ))
}

/// AutoAttack and the gradient-free check on the first [`AA_IMAGES`] test images, into
/// `acc` (the model's figures): AutoAttack's standard components after APGD-CE (APGD-T,
/// FAB-T, Square-5000) each on every image, run on `engine` (the exported sparse model:
/// the same network as the dense one, within the export's tolerance, and several times
/// faster at the many batch-1-like queries of Square); APGD-CE is the dense model's
/// full-set run (the same attack: 100 steps, one restart), read on those images.
/// AutoAttack's figure is the per-example worst case of its four components (running
/// each on every image rather than on the survivors of the earlier ones costs a little
/// more and finds at least as much); `worst_aa` adds every other attack of `verdicts`.
pub fn autoattack_check(
    engine: &impl Classifier,
    test: &Dataset,
    protocol: Protocol,
    verdicts: &Verdicts,
    acc: &mut Accuracies,
) -> Result<(), String> {
    let m = AA_IMAGES.min(test.len());
    let head = test.subset(&(0..m).collect::<Vec<_>>());
    let aa = settings(protocol, vec!["autoattack"]).specs()[0];
    let specs = &aa.components()[1..];
    eprintln!("AutoAttack's other components on the exported sparse model, first {m} test images");
    let r = rcc_attack::evaluate_with_progress(
        engine,
        &DatasetExamples(&head),
        specs,
        AA_BATCH,
        EVAL_SEED,
        |p| match p {
            rcc_attack::Progress::Done(a) => eprintln!(
                "  {}: {:.2}% ({:.1} s)",
                a.spec.describe(),
                100.0 * a.acc,
                a.seconds
            ),
            batch => crate::eval::print_progress(&batch, ""),
        },
    )
    .map_err(|e| e.to_string())?;
    let survives = |i: usize| r.attacks.iter().all(|a| a.correct[i]);
    let aa_correct: Vec<bool> = (0..m).map(|i| verdicts.apgd[i] && survives(i)).collect();
    let worst: Vec<bool> = (0..m).map(|i| verdicts.all[i] && survives(i)).collect();
    acc.pgd_aa = fraction(&verdicts.pgd[..m]);
    acc.apgd_aa = fraction(&verdicts.apgd[..m]);
    acc.autoattack = fraction(&aa_correct);
    acc.square = r
        .attacks
        .iter()
        .find(|a| a.spec.gradient_free())
        .map_or(f64::NAN, |a| a.acc);
    acc.worst_aa = fraction(&worst);
    Ok(())
}

/// The radii of the eps sweep: [`SWEEP_FRACTIONS`] x eps, then doubling until
/// [`SWEEP_LAST`], which ends it. On MNIST (eps 0.3) that is 0 .. 0.6; on Fashion-MNIST
/// (eps 0.1) the doubling adds 0.4 and 0.5, because at 2 x eps = 0.2 a robust net still
/// keeps a fifth of its accuracy and the sweep must reach the radius where an attack that
/// works drives it to 0 (the gradient-masking check).
pub fn sweep_radii(eps: f32) -> Vec<f32> {
    let mut radii: Vec<f32> = SWEEP_FRACTIONS.iter().map(|f| f * eps).collect();
    let mut last = radii[radii.len() - 1];
    while last > 0.0 && last < SWEEP_LAST {
        last = (2.0 * last).min(SWEEP_LAST);
        radii.push(last);
    }
    radii
}

/// PGD-40 accuracy at each radius of [`sweep_radii`] on the first [`SWEEP_IMAGES`] test
/// images: (eps, accuracy).
pub fn eps_sweep(
    model: &impl Classifier,
    test: &Dataset,
    protocol: Protocol,
) -> Result<Vec<(f32, f64)>, String> {
    let sub = test.subset(&(0..SWEEP_IMAGES.min(test.len())).collect::<Vec<_>>());
    let radii = sweep_radii(protocol.eps);
    let mut s = settings(protocol, vec!["pgd"]);
    s.restarts = 1;
    let specs = s.sweep_specs(&radii)?;
    let report = rcc_attack::evaluate(model, &DatasetExamples(&sub), &specs, EVAL_BATCH, EVAL_SEED)
        .map_err(|e| e.to_string())?;
    Ok(radii
        .iter()
        .zip(&report.attacks)
        .map(|(&e, a)| (e, a.acc))
        .collect())
}

/// Median batch-1 latency of `model` in microseconds, on this thread, over 7 blocks of
/// 200 inferences (after 100 warm-up ones) on a test image: a quick figure for the
/// report (the criterion benches in `benches/sparse.rs` are the careful ones).
pub fn latency_us(model: &SparseModel, test: &Dataset) -> Result<f64, String> {
    let (x, _) = test.batch(&[0], None);
    let mut out = vec![0.0f32; model.out_len()];
    let mut run = || model.infer(x.data(), &mut out).map_err(|e| e.to_string());
    for _ in 0..100 {
        run()?;
    }
    let mut blocks = Vec::with_capacity(7);
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..200 {
            run()?;
        }
        blocks.push(t.elapsed().as_secs_f64() * 1e6 / 200.0);
    }
    blocks.sort_by(f64::total_cmp);
    Ok(blocks[3])
}

/// The number at `path` (object keys, outermost first) in a parsed metrics line; None
/// when a key is missing or the value is not a number (`null`: a non-finite value).
pub fn lookup(doc: &Json, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(doc, |v, k| v.get(k))?.as_f64()
}

/// The number at `path` in one metrics line; None also when the line is not JSON.
pub fn metric(line: &str, path: &[&str]) -> Option<f64> {
    lookup(&parse_json(line).ok()?, path)
}

/// What the training left in `metrics.jsonl`: wall time and memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainingFacts {
    pub epochs: usize,
    pub train_seconds: f64,
    pub peak_rss: f64,
    /// The compressor's extra state: the largest over epochs of ADMM's Z and U plus the
    /// masks as the trainer counts them, and the most heap the compressor held, scratch
    /// included, as the counting allocator measured it.
    pub extra_state_bytes: f64,
    pub heap_peak: f64,
    pub state_total_bytes: f64,
    /// The last during-training PGD-40 check on the test set (NaN if none: with `--val`
    /// the check runs on the validation split, which the test figures must not mix with).
    pub pgd_1000: f64,
}

pub fn training_facts(run: &Path) -> Result<TrainingFacts, String> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut f = TrainingFacts {
        pgd_1000: f64::NAN,
        ..TrainingFacts::default()
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc =
            parse_json(line).map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?;
        let num = |path: &[&str]| lookup(&doc, path).unwrap_or(0.0);
        f.epochs += 1;
        f.train_seconds += num(&["seconds"]);
        f.peak_rss = f.peak_rss.max(num(&["peak_rss_bytes"]));
        let extra = num(&["state_bytes", "admm"]) + num(&["state_bytes", "masks"]);
        f.extra_state_bytes = f.extra_state_bytes.max(extra);
        f.heap_peak = f.heap_peak.max(num(&["compressor_heap_peak_bytes"]));
        f.state_total_bytes = f.state_total_bytes.max(num(&["state_bytes", "total"]));
        if let Some(p) = lookup(&doc, &["test_pgd40_acc"]) {
            f.pgd_1000 = p;
        }
    }
    Ok(f)
}

/// Everything the report and the sweep's table show for one run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub dense: Accuracies,
    pub sparse: Accuracies,
    pub sweep: Vec<(f32, f64)>,
    pub prunable: usize,
    pub nnz: usize,
    pub params: usize,
    pub dense_bytes: usize,
    pub sparse_bytes: usize,
    pub file_bytes: u64,
    pub latency_us: f64,
    pub facts: TrainingFacts,
    pub eval_seconds: f64,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.prunable as f64 / self.nnz.max(1) as f64
    }

    /// Largest dense/sparse gap over the four accuracies, in points.
    pub fn gap_pts(&self) -> f64 {
        let (d, s) = (&self.dense, &self.sparse);
        [
            d.clean - s.clean,
            d.fgsm - s.fgsm,
            d.pgd - s.pgd,
            d.apgd - s.apgd,
        ]
        .iter()
        .fold(0f64, |m, v| m.max(100.0 * v.abs()))
    }

    pub fn to_text(&self) -> String {
        let mut s =
            String::from("# rcc run summary (cargo xtask train); fractions, bytes, seconds\n");
        for (who, a) in [("dense", &self.dense), ("sparse", &self.sparse)] {
            for (k, v) in [
                ("clean", a.clean),
                ("fgsm", a.fgsm),
                ("pgd", a.pgd),
                ("apgd", a.apgd),
                ("transfer", a.transfer),
                ("worst", a.worst),
                ("autoattack", a.autoattack),
                ("square", a.square),
                ("pgd_aa", a.pgd_aa),
                ("apgd_aa", a.apgd_aa),
                ("worst_aa", a.worst_aa),
                ("seconds", a.seconds),
            ] {
                let _ = writeln!(s, "{who}.{k} = {v}");
            }
        }
        let sweep: Vec<String> = self.sweep.iter().map(|(e, a)| format!("{e}:{a}")).collect();
        let _ = writeln!(s, "sweep = {}", sweep.join(","));
        for (k, v) in [
            ("prunable", self.prunable as f64),
            ("nnz", self.nnz as f64),
            ("params", self.params as f64),
            ("dense_bytes", self.dense_bytes as f64),
            ("sparse_bytes", self.sparse_bytes as f64),
            ("file_bytes", self.file_bytes as f64),
            ("latency_us", self.latency_us),
            ("epochs", self.facts.epochs as f64),
            ("train_seconds", self.facts.train_seconds),
            ("peak_rss", self.facts.peak_rss),
            ("extra_state_bytes", self.facts.extra_state_bytes),
            ("heap_peak", self.facts.heap_peak),
            ("state_total_bytes", self.facts.state_total_bytes),
            ("pgd_1000", self.facts.pgd_1000),
            ("eval_seconds", self.eval_seconds),
        ] {
            let _ = writeln!(s, "{k} = {v}");
        }
        s
    }

    pub fn parse(text: &str) -> Result<Summary, String> {
        // A summary written before the transfer check existed keeps its default, NaN: not
        // measured.
        let mut s = Summary::default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (k, v) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(format!("summary: expected key = value, got {line:?}"))?;
            if k == "sweep" {
                for item in v.split(',').filter(|i| !i.is_empty()) {
                    let (e, a) = item
                        .split_once(':')
                        .ok_or(format!("summary: sweep item {item:?}"))?;
                    let e = e.parse().map_err(|_| format!("summary: sweep eps {e:?}"))?;
                    let a = a.parse().map_err(|_| format!("summary: sweep acc {a:?}"))?;
                    s.sweep.push((e, a));
                }
                continue;
            }
            let x: f64 = v
                .parse()
                .map_err(|_| format!("summary: {k}: {v:?} is not a number"))?;
            let acc = |a: &mut Accuracies, field: &str| -> Result<(), String> {
                match field {
                    "clean" => a.clean = x,
                    "fgsm" => a.fgsm = x,
                    "pgd" => a.pgd = x,
                    "apgd" => a.apgd = x,
                    "transfer" => a.transfer = x,
                    "worst" => a.worst = x,
                    "autoattack" => a.autoattack = x,
                    "square" => a.square = x,
                    "pgd_aa" => a.pgd_aa = x,
                    "apgd_aa" => a.apgd_aa = x,
                    "worst_aa" => a.worst_aa = x,
                    "seconds" => a.seconds = x,
                    _ => return Err(format!("summary: unknown key {k:?}")),
                }
                Ok(())
            };
            match k.split_once('.') {
                Some(("dense", f)) => acc(&mut s.dense, f)?,
                Some(("sparse", f)) => acc(&mut s.sparse, f)?,
                _ => match k {
                    "prunable" => s.prunable = x as usize,
                    "nnz" => s.nnz = x as usize,
                    "params" => s.params = x as usize,
                    "dense_bytes" => s.dense_bytes = x as usize,
                    "sparse_bytes" => s.sparse_bytes = x as usize,
                    "file_bytes" => s.file_bytes = x as u64,
                    "latency_us" => s.latency_us = x,
                    "epochs" => s.facts.epochs = x as usize,
                    "train_seconds" => s.facts.train_seconds = x,
                    "peak_rss" => s.facts.peak_rss = x,
                    "extra_state_bytes" => s.facts.extra_state_bytes = x,
                    "heap_peak" => s.facts.heap_peak = x,
                    // Written by an earlier version (resident-set growth): not comparable.
                    "state_rss_delta" => {}
                    "state_total_bytes" => s.facts.state_total_bytes = x,
                    "pgd_1000" => s.facts.pgd_1000 = x,
                    "eval_seconds" => s.eval_seconds = x,
                    _ => return Err(format!("summary: unknown key {k:?}")),
                },
            }
        }
        Ok(s)
    }
}

/// A fraction as a percentage with two decimals; "-" if it was not measured (NaN).
pub fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.2}", 100.0 * v)
    }
}

/// Evaluates, exports and reports the run in `run` (which holds `model.safetensors`,
/// `metrics.jsonl` and `config.txt`); writes `model.sparse.safetensors`, `report.md`
/// and `summary.txt` there.
pub fn finish_run(cfg: &TrainConfig, run: &Path, test: &Dataset) -> Result<Summary, String> {
    let t0 = Instant::now();
    let model_path = run.join("model.safetensors");
    let model = Model::load(&model_path, Some(cfg.arch)).map_err(|e| e.to_string())?;
    let sparse_path = run.join("model.sparse.safetensors");
    let exported = export::export(
        &model_path,
        Some(cfg.arch),
        &sparse_path,
        KernelChoice::Auto,
    )?;
    if exported.rel_err > export::TOL {
        return Err(format!(
            "{}: the exported model's logits differ from the dense model's (relative error {:.2e})",
            sparse_path.display(),
            exported.rel_err
        ));
    }
    let protocol = Protocol::for_dataset(cfg.dataset);
    let teacher = if cfg.teacher.is_empty() {
        None
    } else {
        Some(Model::load(Path::new(&cfg.teacher), None).map_err(|e| format!("teacher: {e}"))?)
    };
    let (mut dense, verdicts) =
        evaluate_robust(&model, test, protocol, "dense (masked)", teacher.as_ref())?;
    autoattack_check(&exported.model, test, protocol, &verdicts, &mut dense)?;
    let p = rcc_compress::Prunable::of(&model.net);
    let pruned = p.nnz(&model.params) < p.total();
    // An unpruned model (a teacher, a dense small net) gains nothing from the CSR
    // engine; its export is checked on clean accuracy only.
    let sparse = if pruned {
        evaluate_robust(&exported.model, test, protocol, "exported sparse", None)?.0
    } else {
        let r = rcc_attack::evaluate(
            &exported.model,
            &DatasetExamples(test),
            &[],
            EVAL_BATCH,
            EVAL_SEED,
        )
        .map_err(|e| e.to_string())?;
        Accuracies {
            clean: r.clean_acc,
            fgsm: f64::NAN,
            pgd: f64::NAN,
            apgd: f64::NAN,
            transfer: f64::NAN,
            worst: f64::NAN,
            seconds: 0.0,
            ..Accuracies::default()
        }
    };
    eprintln!("eps sweep: PGD-40 on the first {SWEEP_IMAGES} test images");
    let sweep = eps_sweep(&model, test, protocol)?;
    let latency = latency_us(&exported.model, test)?;
    let sm = &exported.model;
    let summary = Summary {
        dense,
        sparse,
        sweep,
        prunable: p.total(),
        nnz: p.nnz(&model.params),
        params: model.params.len(),
        dense_bytes: 4 * model.params.len(),
        sparse_bytes: sm.weight_bytes() + sm.bias_bytes(),
        file_bytes: exported.file_bytes,
        latency_us: latency,
        facts: training_facts(run)?,
        eval_seconds: t0.elapsed().as_secs_f64(),
    };
    let report = report_md(cfg, run, &summary, &export::report(&exported, &sparse_path));
    crate::cli::write_atomic(&run.join("report.md"), report.as_bytes())?;
    crate::cli::write_atomic(&run.join("summary.txt"), summary.to_text().as_bytes())?;
    Ok(summary)
}

/// Points by which a transferred attack may beat the best white-box one before the report
/// flags gradient masking: one image in 1,000 (sampling noise between two attacks).
pub const MASKING_PTS: f64 = 0.1;

/// Whether the transferred attack beats the best white-box one by more than
/// [`MASKING_PTS`], if it was run. (The small slack keeps a lead of exactly 0.1 points,
/// 10 images in 10,000, from tipping over through float rounding.)
pub fn masking_suspected(a: &Accuracies) -> Option<bool> {
    let (transfer, square) = (transfer_masks(a), square_masks(a));
    if transfer.is_none() && square.is_none() {
        return None;
    }
    Some(transfer == Some(true) || square == Some(true))
}

/// The transfer check alone: whether PGD crafted on the teacher beats the best white-box
/// attack by more than [`MASKING_PTS`] (on the whole set), if it was run.
fn transfer_masks(a: &Accuracies) -> Option<bool> {
    (!a.transfer.is_nan()).then(|| 100.0 * (a.pgd.min(a.apgd) - a.transfer) > MASKING_PTS + 1e-9)
}

/// The gradient-free check alone: whether Square beats the best white-box gradient attack
/// by more than [`SQUARE_MASKING_PTS`] on the first [`AA_IMAGES`], if it was run.
fn square_masks(a: &Accuracies) -> Option<bool> {
    (!a.square.is_nan())
        .then(|| 100.0 * (a.pgd_aa.min(a.apgd_aa) - a.square) > SQUARE_MASKING_PTS + 1e-9)
}

/// What the transferred attack and the gradient-free attack say about gradient masking,
/// if either was run.
pub fn masking_verdict(a: &Accuracies) -> Option<String> {
    masking_suspected(a)?;
    let mut lines = vec![];
    if let Some(flag) = transfer_masks(a) {
        let white = a.pgd.min(a.apgd);
        let lead = 100.0 * (white - a.transfer);
        lines.push(if flag {
            format!(
                "**Gradient masking suspected (transfer check):** PGD crafted on the teacher fools this model {lead:.2} points more than the best white-box attack ({} against {}): its own gradients are misleading the white-box attacks. Trust the worst case, not the PGD figure.",
                pct(a.transfer),
                pct(white)
            )
        } else {
            format!(
                "Transfer check: PGD crafted on the teacher ({}) does not beat the best white-box attack ({}) by more than {MASKING_PTS} points.",
                pct(a.transfer),
                pct(white)
            )
        });
    }
    if let Some(flag) = square_masks(a) {
        let white = a.pgd_aa.min(a.apgd_aa);
        let lead = 100.0 * (white - a.square);
        lines.push(if flag {
            format!(
                "**Gradient masking suspected (gradient-free check):** the Square Attack, which reads only logits, leaves {} on the first {AA_IMAGES} images against {} under the best white-box gradient attack, {lead:.2} points lower: the gradients are misleading the white-box attacks. Trust the worst case that includes Square.",
                pct(a.square),
                pct(white)
            )
        } else {
            format!(
                "Gradient-free check: Square ({}) does not beat the best white-box gradient attack ({}) by more than {SQUARE_MASKING_PTS} points on the first {AA_IMAGES} images.",
                pct(a.square),
                pct(white)
            )
        });
    }
    Some(lines.join("\n\n"))
}

/// `report.md` of a run.
pub fn report_md(cfg: &TrainConfig, run: &Path, s: &Summary, layers: &str) -> String {
    let protocol = Protocol::for_dataset(cfg.dataset);
    let mut r = String::new();
    let method = cfg.method.map_or("none".into(), |m| m.to_string());
    let _ = writeln!(
        r,
        "# {} on {}: {method}, {:.2}x\n",
        cfg.arch,
        cfg.dataset,
        s.rate()
    );
    let _ = writeln!(r, "Run folder: `{}`.\n", run.display());
    let _ = writeln!(r, "## Accuracy (%, full test set, eps {})\n", protocol.eps);
    let _ = writeln!(
        r,
        "| model | natural | FGSM | PGD-{} x{RESTARTS} restarts | APGD-CE-{} | PGD-{} crafted on the teacher | worst case | eval s |",
        protocol.steps, protocol.apgd_steps, protocol.steps
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
    for (who, a) in [
        ("dense, masked (training graph)", &s.dense),
        ("exported sparse (CSR engine)", &s.sparse),
    ] {
        let _ = writeln!(
            r,
            "| {who} | {} | {} | {} | {} | {} | {} | {:.0} |",
            pct(a.clean),
            pct(a.fgsm),
            pct(a.pgd),
            pct(a.apgd),
            pct(a.transfer),
            pct(a.worst),
            a.seconds
        );
    }
    let _ = writeln!(
        r,
        "\n### AutoAttack and the gradient-free check (%, first {AA_IMAGES} test images)\n"
    );
    let _ = writeln!(
        r,
        "| model | PGD-{} x{RESTARTS} | APGD-CE-{} | AutoAttack | Square-5000 | worst case of every attack |",
        protocol.steps, protocol.apgd_steps
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|");
    let a = &s.dense;
    let _ = writeln!(
        r,
        "| the run's model | {} | {} | {} | {} | **{}** |",
        pct(a.pgd_aa),
        pct(a.apgd_aa),
        pct(a.autoattack),
        pct(a.square),
        pct(a.worst_aa)
    );
    let _ = writeln!(
        r,
        "\nAutoAttack is the standard version (Croce & Hein 2020): APGD-CE (100 steps), APGD-T (100 steps, 9 targets), FAB-T (100 steps, 9 targets) and Square (5,000 queries, p_init 0.8), one run each; an image counts only if it survives all four. APGD-CE is the dense model's run above, read on these images; the other three ran on the exported sparse model (the same network through the CSR engine, which answers Square's queries several times faster), each on every image correct clean. Square-5000 is the Square Attack's own figure: it reads only the logits, so no gradient masking can hide a model from it. The last column counts an image only if it survives every attack of this section and of the table above: the figure to compare models on."
    );
    if let Some(verdict) = masking_verdict(&s.dense) {
        let _ = writeln!(r, "\n{verdict}");
    }
    let agree = s.gap_pts() <= AGREEMENT_PTS;
    let _ = writeln!(
        r,
        "\nDense and sparse {} within {AGREEMENT_PTS} points (largest gap {:.2}; the sparse model is attacked only if it is pruned). Robust accuracy counts an image only if it is classified right clean and attacked; PGD starts at a random point (step {}), seed {EVAL_SEED}. The transferred PGD (one start, every step taken) is crafted on the run's teacher and judged by the dense model: a black-box attack, the check for gradient masking, run when the run has a teacher. The worst case counts an image only if it survives every attack of its row.\n",
        if agree { "agree" } else { "DO NOT agree" },
        s.gap_pts(),
        protocol.step_size
    );
    let _ = writeln!(
        r,
        "## Eps sweep (PGD-{}, first {SWEEP_IMAGES} test images, dense masked model)\n",
        protocol.steps
    );
    let _ = writeln!(
        r,
        "| eps | {} |",
        s.sweep
            .iter()
            .map(|(e, _)| format!("{e:.3}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(r, "|---|{}", "---|".repeat(s.sweep.len()));
    let _ = writeln!(
        r,
        "| accuracy % | {} |\n",
        s.sweep
            .iter()
            .map(|(_, a)| pct(*a))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        r,
        "Accuracy must fall as eps grows and reach about 0 at large eps; a flat curve would mean gradient masking.\n"
    );
    let _ = writeln!(r, "## Compression\n");
    let _ = writeln!(
        r,
        "- rate **{:.2}x** = {} prunable weights / {} non-zero (sparsity {:.2}%); {} parameters in all (biases are not pruned).",
        s.rate(),
        s.prunable,
        s.nnz,
        100.0 * (1.0 - s.nnz as f64 / s.prunable.max(1) as f64),
        s.params
    );
    let _ = writeln!(
        r,
        "- model bytes: dense {} (f32), sparse {} as built (CSR values, indices and row pointers plus biases, {:.1}% of dense), file {} bytes.",
        s.dense_bytes,
        s.sparse_bytes,
        100.0 * s.sparse_bytes as f64 / s.dense_bytes.max(1) as f64,
        s.file_bytes
    );
    let _ = writeln!(
        r,
        "- sparse batch-1 latency: **{:.1} µs** (1 thread, median of 7 x 200 inferences; `cargo bench --bench sparse` has the careful figures).\n",
        s.latency_us
    );
    let _ = writeln!(
        r,
        "Per layer (from the exported file):\n\n```\n{layers}```\n"
    );
    let f = &s.facts;
    let _ = writeln!(r, "## Training\n");
    let _ = writeln!(
        r,
        "- {} epochs in {:.0} s of training ({:.1} min); evaluation and export {:.0} s.",
        f.epochs,
        f.train_seconds,
        f.train_seconds / 60.0,
        s.eval_seconds
    );
    if f.state_total_bytes == 0.0 {
        let _ = writeln!(
            r,
            "- memory: no compressor (plain training); peak resident set {}.",
            if f.peak_rss > 0.0 {
                format!("{:.1} MiB", f.peak_rss / (1 << 20) as f64)
            } else {
                "not recorded".into()
            }
        );
    } else {
        let _ = writeln!(
        r,
        "- memory: training state {} bytes at most (parameters, gradients, optimiser moments, masks, ADMM Z and U, teacher); the compressor's extra state {} bytes as counted, {} bytes at most on the heap as measured by the counting allocator (scratch included); peak resident set {:.1} MiB.",
        f.state_total_bytes,
        f.extra_state_bytes,
        f.heap_peak,
        f.peak_rss / (1 << 20) as f64
    );
    }
    let _ = writeln!(r, "\n## Settings\n\n```\n{}```", cfg.to_text());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_radii_reach_the_grey_image() {
        let close = |got: Vec<f32>, want: &[f32]| {
            assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        };
        // MNIST: 2 x 0.3 is already past the grey image.
        close(sweep_radii(0.3), &[0.0, 0.1, 0.2, 0.3, 0.4, 0.6]);
        // Fashion-MNIST: 0.2 is not, so the sweep doubles to 0.4 and ends at 0.5.
        close(
            sweep_radii(0.1),
            &[0.0, 0.1 / 3.0, 0.2 / 3.0, 0.1, 0.4 / 3.0, 0.2, 0.4, 0.5],
        );
        // CIFAR-10 (8/255) ends at 0.5 too, after three doublings.
        let c = sweep_radii(8.0 / 255.0);
        assert_eq!(c.len(), 9);
        assert_eq!(c[c.len() - 1], SWEEP_LAST);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }

    /// The report flags masking only when the transferred attack beats the white-box
    /// ones by more than the noise allowance, and says nothing when it was not run.
    #[test]
    fn masking_verdict_flags_a_transfer_that_beats_white_box() {
        let a = |pgd, apgd, transfer| Accuracies {
            pgd,
            apgd,
            transfer,
            ..Accuracies::default()
        };
        let v = |x: Accuracies| masking_verdict(&x);
        assert_eq!(v(a(0.9, 0.89, f64::NAN)), None);
        assert!(v(a(0.9, 0.89, 0.8895))
            .unwrap()
            .starts_with("Transfer check: "));
        // Exactly 0.1 points (10 images in 10,000) is not more than the allowance, 11 is.
        assert_eq!(masking_suspected(&a(0.9134, 0.9131, 0.9121)), Some(false));
        assert_eq!(masking_suspected(&a(0.9134, 0.9131, 0.9120)), Some(true));
        assert_eq!(masking_suspected(&Accuracies::default()), None);
        assert!(v(a(0.9, 0.89, 0.95))
            .unwrap()
            .starts_with("Transfer check: "));
        let flagged = v(a(0.2, 0.27, 0.095)).unwrap();
        assert!(
            flagged.contains("masking suspected") && flagged.contains("10.50 points"),
            "{flagged}"
        );
    }

    /// Square beating the white-box gradient attacks on the same images by more than
    /// 0.5 points flags masking too, with or without the transfer check.
    #[test]
    fn masking_verdict_flags_a_square_that_beats_white_box() {
        let a = |pgd_aa, apgd_aa, square, transfer| Accuracies {
            pgd: 0.9,
            apgd: 0.9,
            pgd_aa,
            apgd_aa,
            square,
            transfer,
            ..Accuracies::default()
        };
        // The 16x model of issue 09's report: APGD-CE 84.5, Square 80.5.
        let flagged = masking_verdict(&a(0.87, 0.845, 0.805, f64::NAN)).unwrap();
        assert!(
            flagged.contains("gradient-free check") && flagged.contains("4.00 points lower"),
            "{flagged}"
        );
        // Exactly 0.5 points (5 images in 1,000) is within the allowance, 0.6 is not.
        assert_eq!(
            masking_suspected(&a(0.85, 0.84, 0.835, f64::NAN)),
            Some(false)
        );
        assert_eq!(
            masking_suspected(&a(0.85, 0.84, 0.834, f64::NAN)),
            Some(true)
        );
        // The transfer check clean, Square not: suspected, and both lines are there.
        let both = masking_verdict(&a(0.85, 0.84, 0.80, 0.95)).unwrap();
        assert!(both.contains("Transfer check: ") && both.contains("(gradient-free check)"));
        assert_eq!(masking_suspected(&a(0.85, 0.84, 0.80, 0.95)), Some(true));
    }

    /// A summary written before the transfer check reads back with it "not measured",
    /// and a new one round-trips it.
    #[test]
    fn summary_round_trips_the_transfer_figure() {
        let old = "dense.clean = 0.98\ndense.pgd = 0.9\ndense.worst = 0.88\nnnz = 10\n";
        let s = Summary::parse(old).unwrap();
        assert!(s.dense.transfer.is_nan() && s.sparse.transfer.is_nan());
        assert_eq!(pct(s.dense.transfer), "-");
        let mut s = s;
        s.dense.transfer = 0.875;
        let back = Summary::parse(&s.to_text()).unwrap();
        assert_eq!(back.dense.transfer, 0.875);
        assert!(back.sparse.transfer.is_nan());
    }

    #[test]
    fn training_facts_read_nested_metrics() {
        let dir = std::env::temp_dir().join(format!("rcc-facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |epoch, admm, masks, heap, pgd: &str| {
            format!(
                "{{\"epoch\":{epoch},\"train_adv\":\"pgd:0.3:10:0.075\"{pgd},\"state_bytes\":{{\"params\":8,\"admm\":{admm},\"masks\":{masks},\"total\":{}}},\"peak_rss_bytes\":{},\"compressor_heap_peak_bytes\":{heap},\"seconds\":1.5}}\n",
                100 + admm + masks,
                1000 * epoch
            )
        };
        let text = line(1, 64, 0, 70, "") + &line(2, 0, 4, 74, ",\"test_pgd40_acc\":0.875");
        std::fs::write(dir.join("metrics.jsonl"), &text).unwrap();
        let f = training_facts(&dir).unwrap();
        assert_eq!((f.epochs, f.train_seconds), (2, 3.0));
        assert_eq!((f.extra_state_bytes, f.heap_peak), (64.0, 74.0));
        assert_eq!(
            (f.state_total_bytes, f.peak_rss, f.pgd_1000),
            (164.0, 2000.0, 0.875)
        );
        assert_eq!(metric("{\"a\":{\"b\":2}}", &["a", "b"]), Some(2.0));
        assert_eq!(metric("{\"a\":{\"b\":2}}", &["b"]), None);
        assert_eq!(metric("not json", &["a"]), None);
        assert_eq!(metric("{\"a\":null}", &["a"]), None);
        // A line that is not JSON is an error naming the file and the line.
        std::fs::write(
            dir.join("metrics.jsonl"),
            text + "{\"epoch\":3,\"seconds\":",
        )
        .unwrap();
        let e = training_facts(&dir).unwrap_err();
        assert!(e.contains("metrics.jsonl: line 3: malformed JSON"), "{e}");
    }
}
