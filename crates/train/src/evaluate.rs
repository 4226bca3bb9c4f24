//! The end of a run (issue 6): the full robustness evaluation of the trained
//! (dense, masked) model *and* of its exported sparse model, a batch-1 latency figure, and
//! the run's `report.md` and `summary.txt`.
//!
//! - Every figure is taken on the run's final evaluation set: the whole test set, or the
//!   validation split when the run holds one out (`val > 0`), so that settings chosen on
//!   a run's figures never see the test set ([`eval_split`]).
//! - Attacks (method.md sections 4 and 5): FGSM, PGD-40 from a random start with
//!   [`RESTARTS`] restarts, and APGD-CE (100 steps, one run), at the dataset's eps, on the whole
//!   set. The sparse model (`model.sparse.safetensors`, read back through the
//!   validating loader) is attacked through its own input gradients, with the same seed,
//!   so the two evaluations see the same random starts and differ only by float summation
//!   order: they must agree within [`AGREEMENT_PTS`] points, and the report says whether
//!   they do.
//! - When the run has a teacher: PGD-40 crafted on the teacher and judged by the dense
//!   model (one start), the black-box check for gradient masking (a transferred attack
//!   that beats every white-box one means the white-box ones were blocked); the worst
//!   case per image then covers it too.
//! - On the first [`AA_IMAGES`] images: AutoAttack (standard version: APGD-CE,
//!   APGD-T, FAB-T and Square with 5,000 queries, in sequence) and, on its own, the
//!   gradient-free Square Attack (5,000 queries), on the dense and on the sparse model.
//!   The worst case over those images then includes them (`worst_aa`): the figure that
//!   verdicts are taken on. Square beating the white-box gradient attacks by more than
//!   [`SQUARE_MASKING_PTS`] on the same images also flags gradient masking.
//! - An eps sweep of PGD-40 (step scaled with eps) on the first [`SWEEP_IMAGES`]
//!   images, for the gradient-masking check: accuracy must fall as eps grows and reach
//!   about 0 at large eps.
//! - `summary.txt` holds the figures as `key = value` lines, for `cargo xtask sweep`.

use crate::metrics::TrainingFacts;
use crate::protocol::{DatasetExamples, Protocol, Settings};
use crate::report::{pct, report_md, Summary};
use crate::run_dir::{write_atomic, RunDir};
use crate::trainer::{Observer, RunData};
use crate::{Error, Result, TrainConfig};
use rcc_attack::{AttackResult, Classifier, Progress, Report};
use rcc_data::Dataset;
use rcc_nn::Model;
use rcc_sparse::{KernelChoice, SparseModel};
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
pub const EVAL_SEED: u64 = 0;
const EVAL_BATCH: usize = 500;
/// Test images (the first ones) that AutoAttack and the stand-alone Square Attack run on:
/// 5,000 queries per robust image are too many for the whole set in a pipeline run.
pub const AA_IMAGES: usize = 1000;

/// The split a run's final evaluation uses ([`RunData::final_eval`]): `"validation"` when
/// the run holds out a validation split, so that settings chosen on its figures never
/// see the test set; `"test"` otherwise.
pub fn eval_split(cfg: &TrainConfig) -> &'static str {
    if cfg.val > 0 {
        "validation"
    } else {
        "test"
    }
}

/// The size of the final evaluation's set when it is cut short (a validation split, or
/// `test-limit`), 0 for the whole test set.
fn eval_limit(cfg: &TrainConfig) -> usize {
    if cfg.val > 0 {
        cfg.val
    } else {
        cfg.test_limit
    }
}

/// The number of AutoAttack images of the run `cfg`.
pub fn aa_images(cfg: &TrainConfig) -> usize {
    match eval_limit(cfg) {
        0 => AA_IMAGES,
        n => n.min(AA_IMAGES),
    }
}

/// The number of eps-sweep images of the run `cfg`.
pub fn sweep_images(cfg: &TrainConfig) -> usize {
    match eval_limit(cfg) {
        0 => SWEEP_IMAGES,
        n => n.min(SWEEP_IMAGES),
    }
}

/// The final evaluation's set in words, e.g. "full test set", "first 300 test images
/// (test-limit)", "validation split (10000 training images held out, seed 1)".
pub fn eval_set_words(cfg: &TrainConfig) -> String {
    if cfg.val > 0 {
        format!(
            "validation split ({} training images held out, seed {})",
            cfg.val, cfg.seed
        )
    } else if cfg.test_limit > 0 {
        format!("first {} test images (test-limit)", cfg.test_limit)
    } else {
        "full test set".to_string()
    }
}
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

/// Accuracy and mean cross-entropy of `model` on `data` (inference mode, no tape), in
/// batches of `batch`.
pub fn accuracy_and_loss(model: &Model, data: &Dataset, batch: usize) -> Result<(f64, f64)> {
    let (mut correct, mut loss) = (0usize, 0f64);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, labels) = data.batch(chunk, None);
        let logits = model.infer(&x)?;
        let k = logits.shape()[1];
        for (row, (&pred, &y)) in logits
            .data()
            .chunks(k)
            .zip(logits.argmax_rows().iter().zip(&labels))
        {
            correct += usize::from(pred == y);
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            loss += lse - row[y] as f64;
        }
    }
    let n = data.len().max(1) as f64;
    Ok((correct as f64 / n, loss / n))
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
        restarts: RESTARTS,
        ..Settings::new(protocol, names)
    }
}

/// The images of a final evaluation and the split they come from (`"test"` or
/// `"validation"`, see [`eval_split`]), which every progress line names.
#[derive(Clone, Copy)]
pub struct EvalSet<'a> {
    pub images: &'a Dataset,
    pub split: &'static str,
}

impl EvalSet<'_> {
    /// The first `n` images (all of them if there are fewer).
    fn head(&self, n: usize) -> Dataset {
        self.images
            .subset(&(0..n.min(self.images.len())).collect::<Vec<_>>())
    }
}

/// FGSM, PGD-40 with restarts and APGD-CE on all of `set`, then PGD-40 crafted on
/// `teacher` if given; progress goes to `obs` under `label`.
pub fn evaluate_robust(
    model: &impl Classifier,
    set: EvalSet,
    protocol: Protocol,
    label: &str,
    teacher: Option<&Model>,
    obs: &mut dyn Observer,
) -> Result<(Accuracies, Verdicts)> {
    let mut specs = settings(protocol, vec!["fgsm", "pgd"]).specs();
    let mut apgd = settings(protocol, vec!["apgd-ce"]);
    apgd.restarts = 1;
    specs.extend(apgd.specs());
    let t0 = Instant::now();
    obs.note(&format!(
        "evaluating the {label} model on {} {} images",
        set.images.len(),
        set.split
    ));
    let report = rcc_attack::evaluate_with_progress(
        model,
        &DatasetExamples(set.images),
        &specs,
        EVAL_BATCH,
        EVAL_SEED,
        |p| obs.attack(label, &p),
    )?;
    let transfer = match teacher {
        None => None,
        Some(t) => {
            let mut s = settings(protocol, vec!["pgd"]);
            s.restarts = 1;
            let label = format!("{label}, crafted on the teacher");
            let r = rcc_attack::evaluate_transfer(
                t,
                model,
                &DatasetExamples(set.images),
                &s.specs(),
                EVAL_BATCH,
                EVAL_SEED,
                |a| obs.attack(&label, &Progress::Done(a)),
            )?;
            Some(r)
        }
    };
    Ok(accuracies(
        &report,
        transfer.as_ref(),
        t0.elapsed().as_secs_f64(),
    ))
}

/// AutoAttack and the gradient-free check on the first [`AA_IMAGES`] images of `set`, into
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
    set: EvalSet,
    protocol: Protocol,
    verdicts: &Verdicts,
    acc: &mut Accuracies,
    obs: &mut dyn Observer,
) -> Result<()> {
    let head = set.head(AA_IMAGES);
    let m = head.len();
    let aa = settings(protocol, vec!["autoattack"]).specs()[0];
    let specs = &aa.components()[1..];
    obs.note(&format!(
        "AutoAttack's other components on the exported sparse model, first {m} {} images",
        set.split
    ));
    let r = rcc_attack::evaluate_with_progress(
        engine,
        &DatasetExamples(&head),
        specs,
        AA_BATCH,
        EVAL_SEED,
        |p| obs.attack("AutoAttack", &p),
    )?;
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

/// PGD-40 accuracy at each radius of [`sweep_radii`] on the first [`SWEEP_IMAGES`]
/// images of `set`: (eps, accuracy).
pub fn eps_sweep(
    model: &impl Classifier,
    set: EvalSet,
    protocol: Protocol,
    obs: &mut dyn Observer,
) -> Result<Vec<(f32, f64)>> {
    let sub = set.head(SWEEP_IMAGES);
    let radii = sweep_radii(protocol.eps);
    let mut s = settings(protocol, vec!["pgd"]);
    s.restarts = 1;
    let specs = s.sweep_specs(&radii)?;
    let report = rcc_attack::evaluate_with_progress(
        model,
        &DatasetExamples(&sub),
        &specs,
        EVAL_BATCH,
        EVAL_SEED,
        |p| obs.attack("eps sweep", &p),
    )?;
    Ok(radii
        .iter()
        .zip(&report.attacks)
        .map(|(&e, a)| (e, a.acc))
        .collect())
}

/// Median batch-1 latency of `model` in microseconds, on this thread, over 7 blocks of
/// 200 inferences (after 100 warm-up ones) on a test image: a quick figure for the
/// report (the criterion benches in `benches/sparse.rs` are the careful ones).
pub fn latency_us(model: &SparseModel, test: &Dataset) -> Result<f64> {
    let (x, _) = test.batch(&[0], None);
    let mut out = vec![0.0f32; model.out_len()];
    let mut run = || model.infer(x.data(), &mut out);
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

/// Evaluates, exports and reports the run in `run` (which holds `model.safetensors`,
/// `metrics.jsonl` and `config.txt`) on `data`'s final evaluation set (the validation
/// split if the run has one, else the test set: [`RunData::final_eval`]); writes
/// `model.sparse.safetensors`, `report.md` and `summary.txt` there.
pub fn finish_run(
    cfg: &TrainConfig,
    run: &RunDir,
    data: &RunData,
    obs: &mut dyn Observer,
) -> Result<Summary> {
    let t0 = Instant::now();
    let set = EvalSet {
        images: data.final_eval(),
        split: eval_split(cfg),
    };
    let model_path = run.model();
    let model = Model::load(&model_path, Some(cfg.arch))?;
    let sparse_path = run.sparse_model();
    let exported = rcc_sparse::export::export(
        &model_path,
        Some(cfg.arch),
        &sparse_path,
        KernelChoice::Auto,
    )?;
    if !exported.matches() {
        return Err(Error::Run(format!(
            "{}: the exported model's logits differ from the dense model's (relative error {:.2e})",
            sparse_path.display(),
            exported.rel_err
        )));
    }
    let protocol = Protocol::for_dataset(cfg.dataset);
    let teacher = cfg.load_teacher()?;
    let (mut dense, verdicts) = evaluate_robust(
        &model,
        set,
        protocol,
        "dense (masked)",
        teacher.as_ref(),
        obs,
    )?;
    autoattack_check(&exported.model, set, protocol, &verdicts, &mut dense, obs)?;
    let p = rcc_compress::Prunable::of(&model.net);
    let pruned = p.nnz(&model.params) < p.total();
    // An unpruned model (a teacher, a dense small net) gains nothing from the CSR
    // engine; its export is checked on clean accuracy only.
    let sparse = if pruned {
        evaluate_robust(&exported.model, set, protocol, "exported sparse", None, obs)?.0
    } else {
        let r = rcc_attack::evaluate(
            &exported.model,
            &DatasetExamples(set.images),
            &[],
            EVAL_BATCH,
            EVAL_SEED,
        )?;
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
    obs.note(&format!(
        "eps sweep: PGD-40 on the first {} {} images",
        SWEEP_IMAGES.min(set.images.len()),
        set.split
    ));
    let sweep = eps_sweep(&model, set, protocol, obs)?;
    let latency = latency_us(&exported.model, set.images)?;
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
        facts: TrainingFacts::read(run.path())?,
        eval_seconds: t0.elapsed().as_secs_f64(),
        layers: p
            .report(&model.params)
            .into_iter()
            .map(|g| (g.name, g.nnz, g.len))
            .collect(),
    };
    let layers = rcc_sparse::export::report(&exported, &sparse_path);
    let report = report_md(cfg, run.path(), &summary, &layers);
    write_atomic(&run.report(), report.as_bytes())?;
    write_atomic(&run.summary(), summary.to_text().as_bytes())?;
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
                "**Gradient masking suspected (gradient-free check):** the Square Attack, which reads only logits, leaves {} on the AutoAttack images against {} under the best white-box gradient attack, {lead:.2} points lower: the gradients are misleading the white-box attacks. Trust the worst case that includes Square.",
                pct(a.square),
                pct(white)
            )
        } else {
            format!(
                "Gradient-free check: Square ({}) does not beat the best white-box gradient attack ({}) by more than {SQUARE_MASKING_PTS} points on the AutoAttack images.",
                pct(a.square),
                pct(white)
            )
        });
    }
    Some(lines.join("\n\n"))
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
}
