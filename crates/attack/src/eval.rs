//! Robustness evaluation: clean accuracy and accuracy under each attack of a list, with
//! the per-example outcome.
//!
//! Definitions (method.md section 5):
//!
//! - An example is **robustly correct** under an attack when the model classifies it
//!   correctly *both* clean *and* at the attack's adversarial point. Examples
//!   misclassified clean are not attacked at all (as in AutoAttack) and count as
//!   failures, so robust accuracy <= clean accuracy by construction. (An attack started
//!   from a random point could otherwise "fix" a misclassified example.) With this
//!   definition the gradient-masking signal of method.md section 5 is the other one: an
//!   accuracy that barely moves as eps grows (see `cargo xtask eval --eps-sweep`).
//! - The iterative attacks run in their evaluation mode: PGD stops an example at the
//!   first iterate that fools the model ([`crate::pgd()`] with `stop_at_fool`), APGD
//!   keeps its first fooling iterate. A verdict is never taken from the attack: every
//!   returned point is checked to lie in the eps-ball around its clean input and in
//!   [0, 1] (an error otherwise: that would be a bug), and classified again by
//!   [`Classifier::logits`].
//! - Randomness: batch `b` of an attack draws from a generator seeded with
//!   `(seed, attack kind, b)`. The attack *kind* (FGSM, PGD-l_inf, PGD-l_2, APGD-CE,
//!   APGD-DLR),
//!   not its position in the list, so an attack gives the same result alone or in a
//!   list, and attacks of one kind share their random starts (common random numbers:
//!   PGD-40 and PGD-10 start from the same points, and an eps sweep scales the same
//!   noise). Results do not depend on the thread count (the engine's kernels are
//!   bit-identical for any count); they do depend on the batch size.

use crate::apgd::{apgd_outcome, apgd_targeted, ApgdConfig};
use crate::ball::Norm;
use crate::fab::{fab_targeted, FabConfig};
use crate::pgd::{pgd, PgdConfig};
use crate::square::{square_linf, SquareConfig};
use crate::{fgsm, AttackLoss, Classifier, Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc_tensor::Tensor;
use std::ops::Range;
use std::time::Instant;

/// An attack and all its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttackSpec {
    /// One signed-gradient step of size eps (l_inf).
    Fgsm { eps: f32 },
    /// PGD in the l_inf ball.
    PgdLinf(PgdConfig),
    /// PGD in the l_2 ball (`step_size` is an l_2 length).
    PgdL2(PgdConfig),
    /// APGD (l_inf) on `loss` with the paper's rho and momentum and a random start:
    /// APGD-CE or APGD-DLR.
    Apgd {
        loss: AttackLoss,
        eps: f32,
        steps: usize,
        restarts: usize,
    },
    /// APGD-T: APGD on the targeted DLR loss, once per target class (the `targets`
    /// highest clean logits after the label's), `restarts` each ([`apgd_targeted`]).
    ApgdT {
        eps: f32,
        steps: usize,
        targets: usize,
        restarts: usize,
    },
    /// FAB-T (l_inf): minimal adversarial examples, judged at eps ([`fab_targeted`]).
    FabT(FabConfig),
    /// Square Attack (l_inf): score-based random search, no gradients
    /// ([`square_linf`]).
    Square(SquareConfig),
    /// AutoAttack (Croce & Hein 2020), l_inf: its components in sequence, each on the
    /// examples every earlier one left robust; an example counts as robust only if it
    /// survives all of them (the per-example worst case of the ensemble).
    /// - standard: APGD-CE (100 steps), APGD-T (100 steps, 9 targets), FAB-T (100
    ///   steps, 9 targets), Square (5,000 queries, p_init 0.8), one restart each;
    /// - `fast`: APGD-CE, APGD-T and Square with 1,000 queries (no FAB-T).
    AutoAttack { eps: f32, fast: bool },
}

impl AttackSpec {
    /// Short name: `fgsm`, `pgd`, `pgd-l2`, `apgd-ce`, `apgd-dlr` (the `cargo xtask
    /// eval --attack` names).
    pub fn name(&self) -> &'static str {
        match self {
            AttackSpec::Fgsm { .. } => "fgsm",
            AttackSpec::PgdLinf(_) => "pgd",
            AttackSpec::PgdL2(_) => "pgd-l2",
            AttackSpec::Apgd {
                loss: AttackLoss::CrossEntropy,
                ..
            } => "apgd-ce",
            AttackSpec::Apgd {
                loss: AttackLoss::Dlr,
                ..
            } => "apgd-dlr",
            AttackSpec::Apgd { .. } => "apgd-targeted-loss",
            AttackSpec::ApgdT { .. } => "apgd-t",
            AttackSpec::FabT(_) => "fab-t",
            AttackSpec::Square(_) => "square",
            AttackSpec::AutoAttack { fast: false, .. } => "autoattack",
            AttackSpec::AutoAttack { fast: true, .. } => "autoattack-fast",
        }
    }

    /// The components of an AutoAttack spec, in their order (see
    /// [`AttackSpec::AutoAttack`]); any other spec is its own only component.
    pub fn components(&self) -> Vec<AttackSpec> {
        let AttackSpec::AutoAttack { eps, fast } = *self else {
            return vec![*self];
        };
        let apgd_ce = AttackSpec::Apgd {
            loss: AttackLoss::CrossEntropy,
            eps,
            steps: 100,
            restarts: 1,
        };
        let apgd_t = AttackSpec::ApgdT {
            eps,
            steps: 100,
            targets: 9,
            restarts: 1,
        };
        let square = SquareConfig::new(eps);
        if fast {
            let square = SquareConfig {
                queries: 1000,
                ..square
            };
            vec![apgd_ce, apgd_t, AttackSpec::Square(square)]
        } else {
            let fab = AttackSpec::FabT(FabConfig::new(eps));
            vec![apgd_ce, apgd_t, fab, AttackSpec::Square(square)]
        }
    }

    /// Whether the attack reads only logits (no gradient can mask a model from it).
    pub fn gradient_free(&self) -> bool {
        matches!(self, AttackSpec::Square(_))
    }

    pub fn norm(&self) -> Norm {
        match self {
            AttackSpec::PgdL2(_) => Norm::L2,
            _ => Norm::Linf,
        }
    }

    pub fn eps(&self) -> f32 {
        match *self {
            AttackSpec::Fgsm { eps }
            | AttackSpec::Apgd { eps, .. }
            | AttackSpec::ApgdT { eps, .. }
            | AttackSpec::AutoAttack { eps, .. } => eps,
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => c.eps,
            AttackSpec::FabT(c) => c.eps,
            AttackSpec::Square(c) => c.eps,
        }
    }

    /// Iterations per restart and target (FGSM: 1; Square: its queries; AutoAttack:
    /// its gradient attacks' 100).
    pub fn steps(&self) -> usize {
        match *self {
            AttackSpec::Fgsm { .. } => 1,
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => c.steps,
            AttackSpec::Apgd { steps, .. } | AttackSpec::ApgdT { steps, .. } => steps,
            AttackSpec::FabT(c) => c.steps,
            AttackSpec::Square(c) => c.queries,
            AttackSpec::AutoAttack { .. } => 100,
        }
    }

    /// The step size (FGSM: eps; APGD: its initial step size, 2 eps); `None` for the
    /// attacks without one (FAB-T, Square, AutoAttack).
    pub fn step_size(&self) -> Option<f32> {
        match *self {
            AttackSpec::Fgsm { eps } => Some(eps),
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => Some(c.step_size),
            AttackSpec::Apgd { eps, .. } | AttackSpec::ApgdT { eps, .. } => Some(2.0 * eps),
            AttackSpec::FabT(_) | AttackSpec::Square(_) | AttackSpec::AutoAttack { .. } => None,
        }
    }

    /// Restarts (per target for the targeted attacks).
    pub fn restarts(&self) -> usize {
        match *self {
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => c.restarts,
            AttackSpec::Apgd { restarts, .. } | AttackSpec::ApgdT { restarts, .. } => restarts,
            _ => 1,
        }
    }

    pub fn random_start(&self) -> bool {
        match *self {
            AttackSpec::Fgsm { .. } | AttackSpec::FabT(_) => false,
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => c.random_start,
            AttackSpec::Apgd { .. }
            | AttackSpec::ApgdT { .. }
            | AttackSpec::Square(_)
            | AttackSpec::AutoAttack { .. } => true,
        }
    }

    /// The same attack at another radius (step sizes unchanged).
    pub fn with_eps(&self, eps: f32) -> AttackSpec {
        match *self {
            AttackSpec::Fgsm { .. } => AttackSpec::Fgsm { eps },
            AttackSpec::PgdLinf(c) => AttackSpec::PgdLinf(PgdConfig { eps, ..c }),
            AttackSpec::PgdL2(c) => AttackSpec::PgdL2(PgdConfig { eps, ..c }),
            AttackSpec::Apgd {
                loss,
                steps,
                restarts,
                ..
            } => AttackSpec::Apgd {
                loss,
                eps,
                steps,
                restarts,
            },
            AttackSpec::ApgdT {
                steps,
                targets,
                restarts,
                ..
            } => AttackSpec::ApgdT {
                eps,
                steps,
                targets,
                restarts,
            },
            AttackSpec::FabT(c) => AttackSpec::FabT(FabConfig { eps, ..c }),
            AttackSpec::Square(c) => AttackSpec::Square(SquareConfig { eps, ..c }),
            AttackSpec::AutoAttack { fast, .. } => AttackSpec::AutoAttack { eps, fast },
        }
    }

    /// All the settings in words, e.g. `PGD-linf eps 0.3, 40 steps of 0.01, random
    /// start, 1 restart`.
    pub fn describe(&self) -> String {
        let restarts = |r: usize| format!("{r} restart{}", if r == 1 { "" } else { "s" });
        let start = |c: &PgdConfig| {
            if c.random_start {
                "random start"
            } else {
                "clean start"
            }
        };
        match self {
            AttackSpec::Fgsm { eps } => format!("FGSM-linf eps {eps}"),
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => format!(
                "PGD-{} eps {}, {} steps of {}, {}, {}",
                self.norm().name(),
                c.eps,
                c.steps,
                c.step_size,
                start(c),
                restarts(c.restarts)
            ),
            AttackSpec::Apgd {
                loss,
                eps,
                steps,
                restarts: r,
            } => format!(
                "APGD-{}-linf eps {eps}, {steps} steps (initial step {}), random start, {}",
                loss.name(),
                2.0 * eps,
                restarts(*r)
            ),
            AttackSpec::ApgdT {
                eps,
                steps,
                targets,
                restarts: r,
            } => format!(
                "APGD-T (targeted DLR)-linf eps {eps}, {steps} steps (initial step {}), {targets} target classes, random start, {} per target",
                2.0 * eps,
                restarts(*r)
            ),
            AttackSpec::FabT(c) => format!(
                "FAB-T-linf eps {}, {} steps, {} target classes, eta {}, beta {}, alpha_max {}, clean start",
                c.eps, c.steps, c.targets, c.eta, c.beta, c.alpha_max
            ),
            AttackSpec::Square(c) => format!(
                "Square-linf eps {}, {} queries, p_init {}, stripe start (gradient-free)",
                c.eps, c.queries, c.p_init
            ),
            AttackSpec::AutoAttack { .. } => {
                let parts: Vec<String> = self.components().iter().map(|c| c.describe()).collect();
                format!(
                    "{} eps {}: in sequence, each on the points still robust: {}",
                    if matches!(self, AttackSpec::AutoAttack { fast: true, .. }) {
                        "AutoAttack (fast version: no FAB-T, 1,000 Square queries)"
                    } else {
                        "AutoAttack (standard version)"
                    },
                    self.eps(),
                    parts.join("; ")
                )
            }
        }
    }

    /// The random stream's tag (see the module docs).
    fn stream_tag(&self) -> u64 {
        match self {
            AttackSpec::Fgsm { .. } => 1,
            AttackSpec::PgdLinf(_) => 2,
            AttackSpec::PgdL2(_) => 3,
            AttackSpec::Apgd {
                loss: AttackLoss::CrossEntropy,
                ..
            } => 4,
            AttackSpec::Apgd {
                loss: AttackLoss::Dlr,
                ..
            } => 5,
            AttackSpec::Apgd { .. } => 6,
            AttackSpec::ApgdT { .. } => 7,
            AttackSpec::FabT(_) => 8,
            AttackSpec::Square(_) => 9,
            AttackSpec::AutoAttack { .. } => 10,
        }
    }

    fn check(&self) -> Result<()> {
        let eps = self.eps();
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::Config(format!(
                "{}: eps must be >= 0, got {eps}",
                self.describe()
            )));
        }
        match self {
            AttackSpec::PgdLinf(c) | AttackSpec::PgdL2(c) => c.check(),
            AttackSpec::Apgd { loss, .. } if loss.is_targeted() => Err(Error::Config(format!(
                "{}: APGD with a targeted loss is APGD-T (AttackSpec::ApgdT)",
                self.describe()
            ))),
            AttackSpec::ApgdT { targets: 0, .. } => Err(Error::Config(format!(
                "{}: at least one target class",
                self.describe()
            ))),
            AttackSpec::FabT(c) => c.check(),
            AttackSpec::Square(c) => c.check(),
            _ if self.restarts() == 0 => Err(Error::Config(format!(
                "{}: at least one restart",
                self.describe()
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs `spec` on one batch in its evaluation mode (see the module docs). At eps = 0
/// every attack returns the clean batch unchanged (the tests check this bit for bit for
/// each attack), so it is returned without running the attack's iterations.
pub fn run_attack(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    spec: &AttackSpec,
    rng: &mut StdRng,
) -> Result<Tensor> {
    spec.check()?;
    if spec.eps() == 0.0 {
        return Ok(x.clone());
    }
    match spec {
        AttackSpec::Fgsm { eps } => fgsm(model, x, labels, *eps),
        AttackSpec::PgdLinf(c) => Ok(pgd(model, x, labels, c, Norm::Linf, true, rng)?.adv),
        AttackSpec::PgdL2(c) => Ok(pgd(model, x, labels, c, Norm::L2, true, rng)?.adv),
        AttackSpec::Apgd {
            loss,
            eps,
            steps,
            restarts,
        } => {
            let cfg = ApgdConfig::new(*eps, *steps, *restarts).with_loss(*loss);
            Ok(apgd_outcome(model, x, labels, &cfg, rng)?.adv)
        }
        AttackSpec::ApgdT {
            eps,
            steps,
            targets,
            restarts,
        } => {
            let cfg = ApgdConfig::new(*eps, *steps, *restarts);
            Ok(apgd_targeted(model, x, labels, &cfg, *targets, rng)?.adv)
        }
        AttackSpec::FabT(c) => Ok(fab_targeted(model, x, labels, c)?.adv),
        AttackSpec::Square(c) => Ok(square_linf(model, x, labels, c, rng)?.adv),
        AttackSpec::AutoAttack { .. } => auto_attack(model, x, labels, spec, rng),
    }
}

/// AutoAttack on one batch: each component on the examples that every earlier one left
/// correctly classified; an example keeps the first point that fools the model. Each
/// component draws from its own generator, seeded from `rng` in order.
fn auto_attack(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    spec: &AttackSpec,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let per = x.numel() / labels.len().max(1);
    let mut adv = x.data().to_vec();
    let mut robust: Vec<usize> = (0..labels.len()).collect();
    for part in spec.components() {
        let mut sub = StdRng::seed_from_u64(rng.gen());
        if robust.is_empty() {
            continue;
        }
        let xs = Tensor::new(
            &crate::ball::with_batch(x.shape(), robust.len()),
            crate::ball::gather(x.data(), per, &robust),
        )?;
        let ys: Vec<usize> = robust.iter().map(|&i| labels[i]).collect();
        let out = run_attack(model, &xs, &ys, &part, &mut sub)?;
        let preds = model.logits(&out)?.argmax_rows();
        let mut still = Vec::with_capacity(robust.len());
        for (j, &i) in robust.iter().enumerate() {
            if preds[j] != labels[i] {
                adv[i * per..(i + 1) * per].copy_from_slice(&out.data()[j * per..(j + 1) * per]);
            } else {
                still.push(i);
            }
        }
        robust = still;
    }
    Ok(Tensor::new(x.shape(), adv)?)
}

/// A labelled test set, handed out in batches.
pub trait Examples {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Examples `range` as a batch `[B, ...]` with their labels.
    fn batch(&self, range: Range<usize>) -> Result<(Tensor, Vec<usize>)>;
}

/// A whole test set held as one tensor.
pub struct TensorExamples<'a> {
    pub x: &'a Tensor,
    pub labels: &'a [usize],
}

impl Examples for TensorExamples<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn batch(&self, range: Range<usize>) -> Result<(Tensor, Vec<usize>)> {
        if range.end > self.labels.len() || self.x.shape().first() != Some(&self.labels.len()) {
            return Err(Error::Data(format!(
                "examples {range:?} of a tensor of shape {:?} with {} labels",
                self.x.shape(),
                self.labels.len()
            )));
        }
        let per = self.x.numel() / self.labels.len().max(1);
        let mut shape = self.x.shape().to_vec();
        shape[0] = range.len();
        let data = self.x.data()[range.start * per..range.end * per].to_vec();
        Ok((Tensor::new(&shape, data)?, self.labels[range].to_vec()))
    }
}

/// One attack's result on the whole set.
#[derive(Clone, Debug)]
pub struct AttackResult {
    pub spec: AttackSpec,
    /// Robust accuracy: the fraction of examples correct clean and adversarially.
    pub acc: f64,
    /// Per example: correct clean and at the adversarial point.
    pub correct: Vec<bool>,
    /// The largest distance (in the attack's norm) of an adversarial point from its
    /// clean input; at most eps up to f32 rounding.
    pub max_dist: f64,
    /// The points were crafted on another model ([`evaluate_transfer`]).
    pub transferred: bool,
    /// Wall time of this attack over the whole set.
    pub seconds: f64,
}

/// Clean and robust accuracy of a model on a set.
#[derive(Clone, Debug)]
pub struct Report {
    pub n: usize,
    pub clean_acc: f64,
    /// Mean clean cross-entropy.
    pub clean_loss: f64,
    pub clean_correct: Vec<bool>,
    pub attacks: Vec<AttackResult>,
}

impl Report {
    /// Accuracy under the worst case of `attacks` (indices into [`Report::attacks`]): an
    /// example counts only if it survives every one of them (as AutoAttack reports its
    /// ensemble). `None` if the list is empty.
    pub fn worst_case(&self, attacks: &[usize]) -> Option<f64> {
        let first = self.attacks.get(*attacks.first()?)?;
        let mut all = first.correct.clone();
        for &i in &attacks[1..] {
            for (a, c) in all.iter_mut().zip(&self.attacks.get(i)?.correct) {
                *a &= c;
            }
        }
        Some(all.iter().filter(|&&c| c).count() as f64 / self.n.max(1) as f64)
    }
}

/// SplitMix64's finaliser.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of batch `batch` of attack kind `tag` in an evaluation seeded `seed`.
pub(crate) fn batch_rng(seed: u64, tag: u64, batch: usize) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(seed) ^ tag) ^ batch as u64))
}

/// [`evaluate_with`] without a progress callback.
pub fn evaluate(
    model: &impl Classifier,
    data: &impl Examples,
    attacks: &[AttackSpec],
    batch: usize,
    seed: u64,
) -> Result<Report> {
    evaluate_with(model, data, attacks, batch, seed, |_| {})
}

/// Clean accuracy, then each attack over the whole set in batches of `batch`;
/// `on_result` sees each attack's result as soon as it is done. See the module docs
/// for the definitions and the seeding.
pub fn evaluate_with(
    model: &impl Classifier,
    data: &impl Examples,
    attacks: &[AttackSpec],
    batch: usize,
    seed: u64,
    mut on_result: impl FnMut(&AttackResult),
) -> Result<Report> {
    evaluate_with_progress(model, data, attacks, batch, seed, |p| {
        if let Progress::Done(r) = p {
            on_result(r)
        }
    })
}

/// What [`evaluate_with_progress`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// `done` of `batches` batches of `spec` are attacked; `robust` of the `seen`
    /// examples so far are robust; `seconds` since the attack started.
    Batch {
        spec: &'a AttackSpec,
        done: usize,
        batches: usize,
        robust: usize,
        seen: usize,
        seconds: f64,
    },
    /// An attack is done.
    Done(&'a AttackResult),
}

/// [`evaluate_with`] that also reports each batch as it is done (long attacks such as
/// Square or AutoAttack take minutes per batch).
pub fn evaluate_with_progress(
    model: &impl Classifier,
    data: &impl Examples,
    attacks: &[AttackSpec],
    batch: usize,
    seed: u64,
    on_progress: impl FnMut(Progress<'_>),
) -> Result<Report> {
    let craft = |spec: &AttackSpec, x: &Tensor, labels: &[usize], rng: &mut StdRng| {
        run_attack(model, x, labels, spec, rng)
    };
    evaluate_core(model, data, attacks, batch, seed, craft, false, on_progress)
}

/// Transfer evaluation: each attack is run against `source` and its points are
/// classified by `target` (method.md section 5: a black-box attack that beats the
/// white-box one is the classic sign of gradient masking in `target`). Clean accuracy,
/// the robust-accuracy definition, the threat-model checks and the seeding are those of
/// [`evaluate_with`]; only the examples `target` gets right clean are attacked.
///
/// The source attack does not stop when it fools the source: a point just across the
/// source's boundary transfers poorly. PGD takes every step and keeps, over restarts,
/// the point of highest source loss ([`crate::pgd()`] without `stop_at_fool`); FGSM is
/// one step anyway; APGD keeps its best-loss iterate unless it fools the source
/// first (its evaluation mode), so PGD is the transfer attack to prefer.
pub fn evaluate_transfer(
    source: &impl Classifier,
    target: &impl Classifier,
    data: &impl Examples,
    attacks: &[AttackSpec],
    batch: usize,
    seed: u64,
    mut on_result: impl FnMut(&AttackResult),
) -> Result<Report> {
    // `evaluate_core` has checked every spec.
    let craft = |spec: &AttackSpec, x: &Tensor, labels: &[usize], rng: &mut StdRng| match spec {
        _ if spec.eps() == 0.0 => Ok(x.clone()),
        AttackSpec::PgdLinf(c) => Ok(pgd(source, x, labels, c, Norm::Linf, false, rng)?.adv),
        AttackSpec::PgdL2(c) => Ok(pgd(source, x, labels, c, Norm::L2, false, rng)?.adv),
        _ => run_attack(source, x, labels, spec, rng),
    };
    let on_progress = |p: Progress<'_>| {
        if let Progress::Done(r) = p {
            on_result(r)
        }
    };
    evaluate_core(target, data, attacks, batch, seed, craft, true, on_progress)
}

/// The loop shared by [`evaluate_with`] and [`evaluate_transfer`]: `judge` gives the
/// clean and adversarial verdicts, `craft` makes a batch's adversarial points.
#[allow(clippy::too_many_arguments)]
fn evaluate_core(
    judge: &impl Classifier,
    data: &impl Examples,
    attacks: &[AttackSpec],
    batch: usize,
    seed: u64,
    craft: impl Fn(&AttackSpec, &Tensor, &[usize], &mut StdRng) -> Result<Tensor>,
    transferred: bool,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<Report> {
    for spec in attacks {
        spec.check()?;
    }
    let n = data.len();
    let batch = batch.max(1);
    let ranges: Vec<Range<usize>> = (0..n)
        .step_by(batch)
        .map(|s| s..(s + batch).min(n))
        .collect();
    let (mut clean_correct, mut loss_sum) = (Vec::with_capacity(n), 0f64);
    for r in &ranges {
        let (x, labels) = data.batch(r.clone())?;
        check_batch(&x, &labels, r)?;
        let logits = judge.logits(&x)?;
        loss_sum += crate::per_example_ce(&logits, &labels)
            .iter()
            .map(|&l| l as f64)
            .sum::<f64>();
        clean_correct.extend(
            logits
                .argmax_rows()
                .iter()
                .zip(&labels)
                .map(|(p, y)| p == y),
        );
    }
    let frac = |v: &[bool]| v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64;
    let mut results = Vec::with_capacity(attacks.len());
    for spec in attacks {
        let t0 = Instant::now();
        let mut correct = vec![false; n];
        let mut max_dist = 0f64;
        for (b, r) in ranges.iter().enumerate() {
            // Only the examples classified correctly clean are attacked.
            let idx: Vec<usize> = r.clone().filter(|&i| clean_correct[i]).collect();
            if idx.is_empty() {
                continue;
            }
            let (x, labels) = data.batch(r.clone())?;
            let local: Vec<usize> = idx.iter().map(|&i| i - r.start).collect();
            let per = x.numel() / labels.len();
            let xs = Tensor::new(
                &crate::ball::with_batch(x.shape(), local.len()),
                crate::ball::gather(x.data(), per, &local),
            )?;
            let ys: Vec<usize> = local.iter().map(|&j| labels[j]).collect();
            let mut rng = batch_rng(seed, spec.stream_tag(), b);
            let adv = craft(spec, &xs, &ys, &mut rng)?;
            max_dist = max_dist.max(check_threat_model(spec, &xs, &adv, &idx)?);
            let preds = judge.logits(&adv)?.argmax_rows();
            for ((&i, p), y) in idx.iter().zip(preds).zip(&ys) {
                correct[i] = p == *y;
            }
            on_progress(Progress::Batch {
                spec,
                done: b + 1,
                batches: ranges.len(),
                robust: correct[..r.end].iter().filter(|&&c| c).count(),
                seen: r.end,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        let result = AttackResult {
            spec: *spec,
            acc: frac(&correct),
            correct,
            max_dist,
            transferred,
            seconds: t0.elapsed().as_secs_f64(),
        };
        on_progress(Progress::Done(&result));
        results.push(result);
    }
    Ok(Report {
        n,
        clean_acc: frac(&clean_correct),
        clean_loss: loss_sum / n.max(1) as f64,
        clean_correct,
        attacks: results,
    })
}

fn check_batch(x: &Tensor, labels: &[usize], r: &Range<usize>) -> Result<()> {
    if labels.len() != r.len() || x.shape().first() != Some(&r.len()) {
        return Err(Error::Data(format!(
            "examples {r:?}: got a batch of shape {:?} with {} labels",
            x.shape(),
            labels.len()
        )));
    }
    Ok(())
}

/// Checks every adversarial example: finite, in [0, 1], and within eps of its clean
/// input (up to f32 rounding). Returns the largest distance.
fn check_threat_model(spec: &AttackSpec, x: &Tensor, adv: &Tensor, idx: &[usize]) -> Result<f64> {
    if adv.shape() != x.shape() {
        return Err(Error::Check(format!(
            "{}: adversarial batch of shape {:?} for a clean batch of {:?}",
            spec.describe(),
            adv.shape(),
            x.shape()
        )));
    }
    let per = x.numel() / x.shape()[0].max(1);
    let (norm, tol) = (spec.norm(), spec.norm().tolerance(spec.eps()));
    let mut max = 0f64;
    for (k, (a, c)) in adv.data().chunks(per).zip(x.data().chunks(per)).enumerate() {
        let d = norm.dist(a, c);
        // `d > tol` would let a NaN distance through.
        let inside = d <= tol;
        if !inside || !a.iter().all(|v| (0.0..=1.0).contains(v)) {
            return Err(Error::Check(format!(
                "{}: the adversarial example of example {} is at {} distance {d} (allowed {tol}) or outside [0, 1]",
                spec.describe(),
                idx[k],
                norm.name()
            )));
        }
        max = max.max(d);
    }
    Ok(max)
}
