//! APGD, l_inf (Croce & Hein, "Reliable evaluation of adversarial robustness with an
//! ensemble of diverse parameter-free attacks", ICML 2020): PGD without a step-size
//! parameter, on the cross-entropy (APGD-CE, AutoAttack's first component) or on the
//! difference of logits ratio (APGD-DLR, [`AttackLoss::Dlr`]: the loss that a saturated
//! softmax cannot mask; AutoAttack runs its targeted form):
//!
//! - the step size starts at `2 * eps`, separately for every example;
//! - each step is a signed-gradient step `z = P(x_k + eta * sign(g_k))` followed by a
//!   momentum step `x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))`
//!   with alpha = 0.75 (the first step has no momentum), `P` the projection onto the
//!   eps-ball and [0, 1];
//! - at the checkpoints `w_j = ceil(p_j * steps)`, with `p_0 = 0`, `p_1 = 0.22` and
//!   `p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`, an example's step size is halved
//!   if (1) fewer than a fraction rho = 0.75 of the steps since the last checkpoint
//!   increased its loss, or (2) its step size was not halved at the last checkpoint
//!   and its best loss has not improved since then. When halved, the example restarts
//!   from its best (highest-loss) point, with the gradient there.
//!
//! As in the authors' code, condition (2) is not tested at the first checkpoint (the
//! step size counts as "just reduced" at the start), a step "increases the loss" when
//! its loss is above the previous iterate's, and the random start is `x + eps * t /
//! ||t||_inf` with `t ~ U[-1, 1]^d`.
//!
//! Every example keeps the first iterate that fools the model; the others end at their
//! best point. A fooled example stops there (its later iterates could not change the
//! outcome), and restarts only attack the examples not fooled yet; the best of the
//! restarts (highest loss) is kept for the others.

use crate::ball::{gather, with_batch, Norm};
use crate::classifier::goal;
use crate::pgd::{per_example, Outcome};
use crate::{AttackLoss, Classifier, Error, Result};
use rand::rngs::StdRng;
use rand::Rng;
use rcc_tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApgdConfig {
    pub eps: f32,
    /// Iterations (gradient evaluations after the start): AutoAttack uses 100.
    pub steps: usize,
    pub restarts: usize,
    /// Start from `x + eps * t / ||t||_inf`, `t ~ U[-1, 1]^d` (else from `x`).
    pub random_start: bool,
    /// Fraction of loss-increasing steps below which the step size is halved (0.75).
    pub rho: f32,
    /// Weight of the gradient step against the previous update (0.75).
    pub alpha: f32,
    /// The loss ascended (and compared across iterates and restarts).
    pub loss: AttackLoss,
}

impl ApgdConfig {
    /// APGD-CE with the paper's settings (rho = alpha = 0.75, random start).
    pub fn new(eps: f32, steps: usize, restarts: usize) -> ApgdConfig {
        ApgdConfig {
            eps,
            steps,
            restarts,
            random_start: true,
            rho: 0.75,
            alpha: 0.75,
            loss: AttackLoss::CrossEntropy,
        }
    }

    /// The same settings on another loss (`AttackLoss::Dlr`: APGD-DLR).
    pub fn with_loss(self, loss: AttackLoss) -> ApgdConfig {
        ApgdConfig { loss, ..self }
    }

    fn check(&self) -> Result<()> {
        let ok = self.eps >= 0.0
            && self.eps.is_finite()
            && self.restarts > 0
            && (0.0..=1.0).contains(&self.rho)
            && (0.0..=1.0).contains(&self.alpha);
        if !ok {
            return Err(Error::Config(format!(
                "APGD needs eps >= 0, at least one restart, rho and alpha in [0, 1], got {self:?}"
            )));
        }
        Ok(())
    }
}

/// The checkpoints `w_1 < w_2 < ... <= steps` (iteration counts after which the step
/// size is checked): `w_j = ceil(p_j * steps)` with the p_j in exact hundredths.
pub fn checkpoints(steps: usize) -> Vec<usize> {
    let (mut prev, mut p) = (0usize, 22usize);
    let mut out: Vec<usize> = vec![];
    if steps == 0 {
        return out;
    }
    loop {
        let w = (p * steps).div_ceil(100);
        if w > steps {
            return out;
        }
        if w > 0 && out.last() != Some(&w) {
            out.push(w);
        }
        let next = p + (p - prev).saturating_sub(3).max(6);
        (prev, p) = (p, next);
    }
}

/// The APGD start for a whole batch: `x + eps * t / ||t||_inf` per example, clamped.
fn random_start(clean: &[f32], per: usize, eps: f32, rng: &mut StdRng) -> Vec<f32> {
    let mut out = Vec::with_capacity(clean.len());
    let per = per.max(1);
    let mut t = vec![0f32; per];
    for c in clean.chunks(per) {
        for v in t.iter_mut() {
            *v = rng.gen_range(-1.0..=1.0);
        }
        let m = t.iter().fold(0f32, |a, v| a.max(v.abs()));
        let f = if m > 0.0 { eps / m } else { 0.0 };
        out.extend(c.iter().zip(&t).map(|(&x, &tv)| x + tv * f));
    }
    for (o, c) in out.chunks_mut(per).zip(clean.chunks(per)) {
        Norm::Linf.project(o, c, eps);
    }
    out
}

/// One APGD run on the examples `active`. Returns per active example: the point (first
/// fooling iterate, else the best point), its loss, and whether it fools.
fn apgd_run(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    active: &[usize],
    start: &[f32],
    cfg: &ApgdConfig,
) -> Result<(Vec<f32>, Vec<f32>, Vec<bool>)> {
    let per = x.numel() / labels.len();
    let m = active.len();
    let eps = cfg.eps;
    let clean = gather(x.data(), per, active);
    let lab: Vec<usize> = active.iter().map(|&i| labels[i]).collect();
    let row = |j: usize| j * per..(j + 1) * per;

    let mut cur = gather(start, per, active);
    let mut prev = cur.clone();
    let mut grad = vec![0f32; m * per];
    let mut best = cur.clone();
    let mut best_grad = vec![0f32; m * per];
    let mut best_loss = vec![f32::NEG_INFINITY; m];
    let mut last_loss = vec![0f32; m];
    let mut eta = vec![2.0 * eps; m];
    let mut successes = vec![0usize; m];
    let mut best_at_check = vec![0f32; m];
    let mut reduced_at_check = vec![true; m];
    let (mut out_loss, mut fooled) = (vec![0f32; m], vec![false; m]);
    let mut out = vec![0f32; m * per];

    // Evaluates the live examples at `cur`: records fooling points (and drops them),
    // updates the gradients, the loss-increase counts and the best points.
    let mut live: Vec<usize> = (0..m).collect();
    let checks = checkpoints(cfg.steps);
    let mut next_check = 0;
    for it in 0..=cfg.steps {
        if it > 0 {
            // Step from the current point of every live example.
            let a = if it == 1 { 1.0 } else { cfg.alpha };
            for &j in &live {
                let (c, x_k, x_prev, g) =
                    (&clean[row(j)], &cur[row(j)], &prev[row(j)], &grad[row(j)]);
                let mut next: Vec<f32> = x_k.to_vec();
                Norm::Linf.step(&mut next, g, eta[j]);
                Norm::Linf.project(&mut next, c, eps);
                for ((z, &xk), &xp) in next.iter_mut().zip(x_k).zip(x_prev) {
                    *z = xk + a * (*z - xk) + (1.0 - a) * (xk - xp);
                }
                Norm::Linf.project(&mut next, c, eps);
                prev[row(j)].copy_from_slice(x_k);
                cur[row(j)].copy_from_slice(&next);
            }
        }
        let xb = Tensor::new(&with_batch(x.shape(), live.len()), gather(&cur, per, &live))?;
        let lb: Vec<usize> = live.iter().map(|&j| lab[j]).collect();
        let (l, logits, g) = model.loss_and_input_grad(&xb, &lb, cfg.loss)?;
        let preds = logits.argmax_rows();
        let classes = logits.shape().last().copied().unwrap_or(1);
        let mut still = Vec::with_capacity(live.len());
        for (k, &j) in live.iter().enumerate() {
            // Any misclassification counts, also for a targeted loss (as AutoAttack's).
            if preds[k] != cfg.loss.true_label(lab[j], classes) {
                out[row(j)].copy_from_slice(&cur[row(j)]);
                (out_loss[j], fooled[j]) = (l[k], true);
                continue;
            }
            let gk = &g.data()[k * per..(k + 1) * per];
            grad[row(j)].copy_from_slice(gk);
            if it > 0 && l[k] > last_loss[j] {
                successes[j] += 1;
            }
            last_loss[j] = l[k];
            if l[k] > best_loss[j] {
                best_loss[j] = l[k];
                best[row(j)].copy_from_slice(&cur[row(j)]);
                best_grad[row(j)].copy_from_slice(gk);
            }
            if it == 0 {
                best_at_check[j] = best_loss[j];
            }
            still.push(j);
        }
        live = still;
        if next_check < checks.len() && it == checks[next_check] {
            let since = it
                - if next_check == 0 {
                    0
                } else {
                    checks[next_check - 1]
                };
            next_check += 1;
            for &j in &live {
                let oscillating = (successes[j] as f32) < cfg.rho * since as f32;
                let stalled = !reduced_at_check[j] && best_loss[j] <= best_at_check[j];
                let halve = oscillating || stalled;
                reduced_at_check[j] = halve;
                best_at_check[j] = best_loss[j];
                successes[j] = 0;
                if halve {
                    eta[j] /= 2.0;
                    cur[row(j)].copy_from_slice(&best[row(j)]);
                    grad[row(j)].copy_from_slice(&best_grad[row(j)]);
                }
            }
        }
        if live.is_empty() {
            break;
        }
    }
    for &j in &live {
        out[row(j)].copy_from_slice(&best[row(j)]);
        out_loss[j] = best_loss[j];
    }
    Ok((out, out_loss, fooled))
}

/// APGD on `cfg.loss` with restarts; see the module docs. Deterministic for a given
/// `rng` state.
pub fn apgd_outcome(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &ApgdConfig,
    rng: &mut StdRng,
) -> Result<Outcome> {
    cfg.check()?;
    per_example(x, labels)?;
    apgd_runs(model, x, &[labels.to_vec()], cfg, rng)
}

/// APGD-T (Croce & Hein 2020, AutoAttack's second component): APGD on the targeted DLR
/// loss ([`AttackLoss::TargetedDlr`]), run once for each of the `targets` classes with
/// the highest clean logits after the example's own (AutoAttack: 9, every other class
/// of a 10-class problem; more than the other classes means all of them), each run only on the examples no earlier run has fooled and
/// with `cfg.restarts` restarts. `labels` are true classes; `cfg.loss` is ignored. An
/// example keeps the first point that fools the model (for any class), else the point
/// of its highest targeted loss over the targets.
pub fn apgd_targeted(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &ApgdConfig,
    targets: usize,
    rng: &mut StdRng,
) -> Result<Outcome> {
    let cfg = cfg.with_loss(AttackLoss::TargetedDlr);
    cfg.check()?;
    per_example(x, labels)?;
    let clean = model.logits(x)?;
    let k = clean.shape().last().copied().unwrap_or(1);
    AttackLoss::TargetedDlr.check(k, &[])?;
    if targets == 0 {
        return Err(Error::Config("APGD-T: at least one target class".into()));
    }
    // At most every other class (as FAB-T): 9 targets on a 10-class model.
    let goals: Vec<Vec<usize>> = targets_by_rank(&clean, labels)
        .iter()
        .take(targets)
        .map(|t| {
            (0..labels.len())
                .map(|i| goal(labels[i], t[i], k))
                .collect()
        })
        .collect();
    apgd_runs(model, x, &goals, &cfg, rng)
}

/// `cfg.restarts` APGD runs for each set of labels in `label_sets` (the true classes,
/// or one target's goals), in order, each on the examples no earlier run has fooled,
/// merged per example: the first point that fools the model, else the highest loss.
fn apgd_runs(
    model: &impl Classifier,
    x: &Tensor,
    label_sets: &[Vec<usize>],
    cfg: &ApgdConfig,
    rng: &mut StdRng,
) -> Result<Outcome> {
    let n = x.shape()[0];
    let per = x.numel() / n;
    let mut best = x.data().to_vec();
    let mut best_loss = vec![f32::NEG_INFINITY; n];
    let mut best_fooled = vec![false; n];
    let mut first = true;
    for labels in label_sets {
        for _ in 0..cfg.restarts {
            let active: Vec<usize> = (0..n).filter(|&i| !best_fooled[i]).collect();
            if active.is_empty() {
                break;
            }
            let start = if cfg.random_start && cfg.eps > 0.0 {
                random_start(x.data(), per, cfg.eps, rng)
            } else {
                x.data().to_vec()
            };
            let (pts, loss, fooled) = apgd_run(model, x, labels, &active, &start, cfg)?;
            let run = crate::pgd::Restart {
                active: &active,
                per,
                pts: &pts,
                loss: &loss,
                fooled: &fooled,
            };
            run.merge_into(first, &mut best, &mut best_loss, &mut best_fooled);
            first = false;
        }
    }
    Ok(Outcome {
        adv: Tensor::new(x.shape(), best)?,
        fooled: best_fooled,
        loss: best_loss,
        loss_trace: vec![],
    })
}

/// The targets of the targeted attacks (APGD-T, FAB-T): `out[r][i]` is the class with
/// the `r`-th highest clean logit of example `i` other than its label (ties to the lower
/// class), as AutoAttack sorts them.
pub(crate) fn targets_by_rank(clean: &Tensor, labels: &[usize]) -> Vec<Vec<usize>> {
    let k = clean.shape().last().copied().unwrap_or(1).max(1);
    let ranked: Vec<Vec<usize>> = clean
        .data()
        .chunks(k)
        .zip(labels)
        .map(|(z, &y)| {
            let mut order: Vec<usize> = (0..k).filter(|&c| c != y).collect();
            order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
            order
        })
        .collect();
    (0..k - 1)
        .map(|r| ranked.iter().map(|o| o[r]).collect())
        .collect()
}

/// APGD (l_inf) on `cfg.loss`: the adversarial batch.
pub fn apgd(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &ApgdConfig,
    rng: &mut StdRng,
) -> Result<Tensor> {
    Ok(apgd_outcome(model, x, labels, cfg, rng)?.adv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_follow_the_paper() {
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99, (1.05)
        assert_eq!(checkpoints(100), vec![22, 41, 57, 70, 80, 87, 93, 99]);
        assert_eq!(checkpoints(40), vec![9, 17, 23, 28, 32, 35, 38, 40]);
        assert_eq!(checkpoints(10), vec![3, 5, 6, 7, 8, 9, 10]);
        assert_eq!(checkpoints(1), vec![1]);
        assert_eq!(checkpoints(0), Vec::<usize>::new());
    }
}
