//! PGD (Madry et al. 2018) with an l_inf or an l_2 ball: from a random start in the
//! eps-ball, `steps` steepest-ascent steps of `step_size` on the cross-entropy (signed
//! gradient for l_inf, per-example normalised gradient for l_2), each projected back onto
//! the ball around the clean input and clamped to [0, 1]. With `restarts` > 1 every
//! example keeps the first restart's perturbation that fools the model, or else the one
//! with the highest loss; later restarts only attack the examples not fooled yet (their
//! random starts are still drawn for the whole batch, so an example's start does not
//! depend on which others were fooled).
//!
//! Two ways to end a run, chosen by [`pgd`]'s `stop_at_fool`:
//!
//! - `false` (Madry; what [`pgd_linf`] and [`pgd_l2`] do, and what adversarial training
//!   wants): every example takes all `steps` steps and the final iterate is returned.
//! - `true` (evaluation): an example stops at the first iterate the model misclassifies,
//!   and that iterate is returned. Robust accuracy can then only go down as `steps`
//!   grows (the iterates of a shorter run are a prefix of a longer one's), and the
//!   fooled examples drop out of the batch, which saves their remaining steps.

use crate::ball::{gather, with_batch, Norm};
use crate::{AttackLoss, Classifier, Error, Result};
use rand::RngCore;
use rcc_tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PgdConfig {
    pub eps: f32,
    pub steps: usize,
    pub step_size: f32,
    /// Start from a uniform random point of the ball (else from the clean input).
    pub random_start: bool,
    pub restarts: usize,
}

impl PgdConfig {
    /// Madry et al.'s MNIST evaluation: eps 0.3, 40 steps of 0.01, random start.
    pub fn mnist_eval() -> PgdConfig {
        PgdConfig {
            eps: 0.3,
            steps: 40,
            step_size: 0.01,
            random_start: true,
            restarts: 1,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let ok = |v: f32| v >= 0.0 && v.is_finite();
        if !(ok(self.eps) && ok(self.step_size)) || self.restarts == 0 {
            return Err(Error::Config(format!(
                "PGD needs eps >= 0, step size >= 0 and at least one restart, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// What an attack found, per example of the batch.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The adversarial batch (same shape as the clean one).
    pub adv: Tensor,
    /// Whether the model misclassifies `adv` (as the attack saw it).
    pub fooled: Vec<bool>,
    /// Cross-entropy at `adv`.
    pub loss: Vec<f32>,
    /// Mean cross-entropy over the batch at iterates `0..=steps` of the first restart
    /// (iterate 0 is the start). Filled only by a PGD run with `stop_at_fool == false`,
    /// where every example takes every step; empty otherwise.
    pub loss_trace: Vec<f64>,
}

/// Checks that `x` is a batch of `labels.len()` examples; returns the values per example.
pub(crate) fn per_example(x: &Tensor, labels: &[usize]) -> Result<usize> {
    let n = labels.len();
    if x.shape().is_empty() || x.shape()[0] != n || n == 0 {
        return Err(Error::Config(format!(
            "a batch of shape {:?} with {n} labels (need the same, non-zero, batch size)",
            x.shape()
        )));
    }
    Ok(x.numel() / n)
}

/// One run over the examples `active` of the batch, from `start` (a whole batch).
/// Returns, per active example: the point, its loss and whether it fools the model.
#[allow(clippy::too_many_arguments)]
fn pgd_run(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    active: &[usize],
    start: &[f32],
    cfg: &PgdConfig,
    norm: Norm,
    stop_at_fool: bool,
    mut trace: Option<&mut Vec<f64>>,
) -> Result<(Vec<f32>, Vec<f32>, Vec<bool>)> {
    let per = x.numel() / labels.len();
    let m = active.len();
    let clean = gather(x.data(), per, active);
    let lab: Vec<usize> = active.iter().map(|&i| labels[i]).collect();
    let mut cur = gather(start, per, active);
    let (mut loss, mut fooled) = (vec![0f32; m], vec![false; m]);
    // Local indices still stepping.
    let mut live: Vec<usize> = (0..m).collect();
    for step in 0..=cfg.steps {
        if live.is_empty() {
            break;
        }
        let xb = Tensor::new(&with_batch(x.shape(), live.len()), gather(&cur, per, &live))?;
        let lb: Vec<usize> = live.iter().map(|&j| lab[j]).collect();
        if step == cfg.steps {
            // The final iterate: logits only.
            let logits = model.logits(&xb)?;
            let l = crate::per_example_ce(&logits, &lb);
            for (k, (&j, p)) in live.iter().zip(logits.argmax_rows()).enumerate() {
                (loss[j], fooled[j]) = (l[k], p != lab[j]);
            }
            if let Some(t) = trace.as_deref_mut() {
                t.push(mean(&l));
            }
            break;
        }
        let (l, logits, g) = model.loss_and_input_grad(&xb, &lb, AttackLoss::CrossEntropy)?;
        if let Some(t) = trace.as_deref_mut() {
            t.push(mean(&l));
        }
        let preds = logits.argmax_rows();
        let mut next = Vec::with_capacity(live.len());
        for (k, &j) in live.iter().enumerate() {
            if stop_at_fool && preds[k] != lab[j] {
                (loss[j], fooled[j]) = (l[k], true);
                continue;
            }
            let row = &mut cur[j * per..(j + 1) * per];
            norm.step(row, &g.data()[k * per..(k + 1) * per], cfg.step_size);
            norm.project(row, &clean[j * per..(j + 1) * per], cfg.eps);
            next.push(j);
        }
        live = next;
    }
    Ok((cur, loss, fooled))
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

/// PGD in the `norm` ball with restarts; see the module docs for `stop_at_fool`.
/// Deterministic for a given `rng` state.
pub fn pgd(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &PgdConfig,
    norm: Norm,
    stop_at_fool: bool,
    rng: &mut dyn RngCore,
) -> Result<Outcome> {
    cfg.check()?;
    let per = per_example(x, labels)?;
    let n = labels.len();
    let mut best = x.data().to_vec();
    let mut best_loss = vec![f32::NEG_INFINITY; n];
    let mut best_fooled = vec![false; n];
    let mut trace = vec![];
    for r in 0..cfg.restarts {
        let active: Vec<usize> = (0..n).filter(|&i| !best_fooled[i]).collect();
        if active.is_empty() {
            break;
        }
        let start = if cfg.random_start {
            norm.random_start(x.data(), per, cfg.eps, rng)
        } else {
            x.data().to_vec()
        };
        let want_trace = r == 0 && !stop_at_fool;
        let (pts, loss, fooled) = pgd_run(
            model,
            x,
            labels,
            &active,
            &start,
            cfg,
            norm,
            stop_at_fool,
            want_trace.then_some(&mut trace),
        )?;
        let run = Restart {
            active: &active,
            per,
            pts: &pts,
            loss: &loss,
            fooled: &fooled,
        };
        run.merge_into(r == 0, &mut best, &mut best_loss, &mut best_fooled);
    }
    Ok(Outcome {
        adv: Tensor::new(x.shape(), best)?,
        fooled: best_fooled,
        loss: best_loss,
        loss_trace: trace,
    })
}

/// PGD-l_inf with restarts, every example taking every step (Madry et al.; what
/// adversarial training uses). Deterministic for a given `rng` state.
pub fn pgd_linf(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &PgdConfig,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    Ok(pgd(model, x, labels, cfg, Norm::Linf, false, rng)?.adv)
}

/// PGD-l_2 with restarts: a random start uniform in the l_2 ball (Gaussian direction,
/// radius `eps * U^(1/d)`), steps of `step_size` along the per-example normalised
/// gradient, projection onto each example's l_2 ball and clamping to [0, 1].
/// Deterministic for a given `rng` state.
pub fn pgd_l2(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &PgdConfig,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    Ok(pgd(model, x, labels, cfg, Norm::L2, false, rng)?.adv)
}

/// One restart's results for the examples it attacked (`active`, indices into the batch;
/// the attacked ones are exactly those not fooled yet).
pub(crate) struct Restart<'a> {
    pub active: &'a [usize],
    /// Values per example.
    pub per: usize,
    pub pts: &'a [f32],
    pub loss: &'a [f32],
    pub fooled: &'a [bool],
}

impl Restart<'_> {
    /// Merges into the running best per example: the first perturbation that fools the
    /// model, else the one with the highest loss (the first restart always counts).
    pub(crate) fn merge_into(
        &self,
        first: bool,
        best: &mut [f32],
        best_loss: &mut [f32],
        best_fooled: &mut [bool],
    ) {
        let per = self.per;
        for (j, &i) in self.active.iter().enumerate() {
            if first || self.fooled[j] || self.loss[j] > best_loss[i] {
                best[i * per..(i + 1) * per].copy_from_slice(&self.pts[j * per..(j + 1) * per]);
                (best_loss[i], best_fooled[i]) = (self.loss[j], self.fooled[j]);
            }
        }
    }
}
