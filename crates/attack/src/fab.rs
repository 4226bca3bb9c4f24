//! FAB-T, l_inf (Croce & Hein, "Minimally distorted adversarial examples with a fast
//! adaptive boundary attack", ICML 2020; targeted as in AutoAttack): a
//! minimal-perturbation attack. It does not ascend a loss inside the eps-ball; it looks
//! for the adversarial example *closest* to the clean input, by repeatedly projecting
//! onto the linearised decision boundary between the label `y` and a target class `t`.
//!
//! Per example and target, from `x_1 = x` (AutoAttack's FAB-T has no random start), for
//! `steps` iterations:
//!
//! 1. linearise the logit gap `f(u) = z_y(u) - z_t(u)` at `x_k`: the boundary is the
//!    hyperplane `w . u = b` with `w = grad f(x_k)`, `b = w . x_k - f(x_k)`;
//! 2. project onto it, within the box [0, 1], with the least l_inf change, both from
//!    the current iterate (`d_1`) and from the clean input (`d_2`) ([`project_linf`]);
//! 3. step `x_{k+1} = clamp((1 - a)(x_k + eta d_1) + a (x + eta d_2), 0, 1)` with the
//!    bias towards the clean input `a = min(|d_1| / (|d_1| + |d_2|), alpha_max)`
//!    (overshoot eta = 1.05, alpha_max = 0.1, the paper's);
//! 4. if `x_{k+1}` is misclassified (any class), record it if it is the closest so far,
//!    and pull it back towards the clean input, `x + beta (x_{k+1} - x)` (beta 0.9), to
//!    search for a closer one.
//!
//! The targets are the classes with the highest clean logits after the label's, one run
//! each (AutoAttack: 9), each on the examples that no earlier target has broken within
//! eps. The outcome is the closest adversarial example found and its l_inf distance;
//! for robust accuracy at eps, an example counts as broken when that distance is at
//! most eps.

use crate::ball::{gather, with_batch, Norm};
use crate::classifier::goal;
use crate::pgd::per_example;
use crate::{AttackLoss, Classifier, Error, Result};
use rcc_tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FabConfig {
    /// The radius that robust accuracy is judged at (the search itself is unbounded).
    pub eps: f32,
    /// Iterations per target (AutoAttack: 100).
    pub steps: usize,
    /// Target classes, by clean logit after the label's (AutoAttack: 9).
    pub targets: usize,
    /// Overshoot of the projection (1.05).
    pub eta: f32,
    /// Pull-back towards the clean input after a success (0.9).
    pub beta: f32,
    /// Largest bias of a step towards the clean input (0.1).
    pub alpha_max: f32,
}

impl FabConfig {
    /// AutoAttack's FAB-T: 100 iterations, 9 targets, eta 1.05, beta 0.9, alpha_max 0.1.
    pub fn new(eps: f32) -> FabConfig {
        FabConfig {
            eps,
            steps: 100,
            targets: 9,
            eta: 1.05,
            beta: 0.9,
            alpha_max: 0.1,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let ok = self.eps >= 0.0
            && self.eps.is_finite()
            && self.targets > 0
            && self.eta >= 1.0
            && self.eta.is_finite()
            && (0.0..1.0).contains(&self.beta)
            && (0.0..=1.0).contains(&self.alpha_max);
        if !ok {
            return Err(Error::Config(format!(
                "FAB needs eps >= 0, at least one target, eta >= 1, beta in [0, 1) and alpha_max in [0, 1], got {self:?}"
            )));
        }
        Ok(())
    }
}

/// What FAB-T found for a batch.
#[derive(Clone, Debug)]
pub struct FabOutcome {
    /// Per example: the closest adversarial example found if it lies within eps, else
    /// the clean input (the point an evaluation at eps classifies).
    pub adv: Tensor,
    /// Per example: an adversarial example within eps was found.
    pub fooled: Vec<bool>,
    /// Per example: the l_inf distance of the closest adversarial example found
    /// (infinity if none).
    pub min_dist: Vec<f32>,
}

/// The least l_inf change `d` that puts `p + d` on the hyperplane `w . u = b` inside the
/// box [0, 1]: every coordinate moves by `r` in the direction that changes `w . u`
/// towards `b` (less where the box stops it first), with `r` the smallest radius that
/// closes the gap. Where the box cannot close it, every coordinate goes to its bound
/// (the nearest point to the hyperplane). Coordinates with `w_i = 0` stay.
pub fn project_linf(p: &[f32], w: &[f32], b: f64) -> Vec<f32> {
    let gap = b - p
        .iter()
        .zip(w)
        .map(|(&u, &v)| u as f64 * v as f64)
        .sum::<f64>();
    let mut d = vec![0f32; p.len()];
    if gap == 0.0 || !gap.is_finite() {
        return d;
    }
    // Per coordinate: its direction, its room to the box and |w_i|.
    let up = gap > 0.0;
    let mut moves: Vec<(f64, f64, usize)> = p
        .iter()
        .zip(w)
        .enumerate()
        .filter(|(_, (_, &v))| v != 0.0)
        .map(|(i, (&u, &v))| {
            let room = if (v > 0.0) == up { 1.0 - u } else { u } as f64;
            (room.max(0.0), (v as f64).abs(), i)
        })
        .collect();
    moves.sort_by(|a, b| a.0.total_cmp(&b.0));
    // gain(r) = sum_{room < r} |w| room + r sum_{room >= r} |w|: piecewise linear and
    // increasing; find where it reaches |gap|.
    let need = gap.abs();
    let mut rest: f64 = moves.iter().map(|m| m.1).sum();
    let (mut done, mut r) = (0f64, f64::INFINITY);
    for &(room, wi, _) in &moves {
        if done + rest * room >= need {
            r = (need - done) / rest;
            break;
        }
        done += wi * room;
        rest -= wi;
    }
    for &(room, _, i) in &moves {
        let sign = if (w[i] > 0.0) == up { 1.0 } else { -1.0 };
        d[i] = (sign * room.min(r)) as f32;
    }
    d
}

fn linf_norm(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, a| m.max(a.abs()))
}

/// FAB-T (l_inf) on a batch; see the module docs.
pub fn fab_targeted(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &FabConfig,
) -> Result<FabOutcome> {
    cfg.check()?;
    let per = per_example(x, labels)?;
    let n = labels.len();
    let clean_logits = model.logits(x)?;
    let k = clean_logits.shape().last().copied().unwrap_or(0);
    AttackLoss::LogitGap.check(k, &[])?;
    AttackLoss::CrossEntropy.check(k, labels)?;
    let targets = cfg.targets.min(k - 1);
    let by_rank = crate::apgd::targets_by_rank(&clean_logits, labels);
    let x0 = x.data();
    let mut best = x0.to_vec();
    let mut min_dist = vec![f32::INFINITY; n];
    // Examples misclassified clean are adversarial at distance 0.
    for (i, (p, &y)) in clean_logits.argmax_rows().iter().zip(labels).enumerate() {
        if *p != y {
            min_dist[i] = 0.0;
        }
    }
    let row = |i: usize| i * per..(i + 1) * per;
    for target in by_rank.iter().take(targets) {
        let active: Vec<usize> = (0..n).filter(|&i| min_dist[i] > cfg.eps).collect();
        if active.is_empty() {
            break;
        }
        let goals: Vec<usize> = active
            .iter()
            .map(|&i| goal(labels[i], target[i], k))
            .collect();
        let clean = gather(x0, per, &active);
        let mut cur = clean.clone();
        for _ in 0..cfg.steps {
            let xb = Tensor::new(&with_batch(x.shape(), active.len()), cur.clone())?;
            let (gap, _, grad) = model.loss_and_input_grad(&xb, &goals, AttackLoss::LogitGap)?;
            for j in 0..active.len() {
                let (c, u, w) = (&clean[row(j)], &cur[row(j)], &grad.data()[row(j)]);
                let b = w
                    .iter()
                    .zip(u)
                    .map(|(&v, &p)| v as f64 * p as f64)
                    .sum::<f64>()
                    - gap[j] as f64;
                let d1 = project_linf(u, w, b);
                let d2 = project_linf(c, w, b);
                let (a1, a2) = (linf_norm(&d1).max(1e-8), linf_norm(&d2).max(1e-8));
                let a = (a1 / (a1 + a2)).clamp(0.0, cfg.alpha_max);
                let next: Vec<f32> = (0..per)
                    .map(|q| {
                        ((u[q] + cfg.eta * d1[q]) * (1.0 - a) + (c[q] + cfg.eta * d2[q]) * a)
                            .clamp(0.0, 1.0)
                    })
                    .collect();
                cur[row(j)].copy_from_slice(&next);
            }
            let xb = Tensor::new(&with_batch(x.shape(), active.len()), cur.clone())?;
            let preds = model.logits(&xb)?.argmax_rows();
            for (j, &i) in active.iter().enumerate() {
                if preds[j] == labels[i] {
                    continue;
                }
                let u = &mut cur[row(j)];
                let dist = Norm::Linf.dist(u, &clean[row(j)]) as f32;
                if dist < min_dist[i] {
                    min_dist[i] = dist;
                    best[row(i)].copy_from_slice(u);
                }
                for (v, &c) in u.iter_mut().zip(&clean[row(j)]) {
                    *v = c + (*v - c) * cfg.beta;
                }
            }
        }
    }
    let fooled: Vec<bool> = min_dist.iter().map(|&d| d <= cfg.eps).collect();
    let mut adv = x0.to_vec();
    for i in (0..n).filter(|&i| fooled[i]) {
        adv[row(i)].copy_from_slice(&best[row(i)]);
    }
    Ok(FabOutcome {
        adv: Tensor::new(x.shape(), adv)?,
        fooled,
        min_dist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The projection lands on the hyperplane with the least l_inf change, checked
    /// against a bisection on the radius.
    #[test]
    fn projection_is_on_the_plane_with_the_least_linf_change() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for case in 0..200 {
            let d = 1 + case % 20;
            let p: Vec<f32> = (0..d).map(|_| rng.gen_range(0.0..=1.0)).collect();
            let w: Vec<f32> = (0..d)
                .map(|_| {
                    if rng.gen_bool(0.2) {
                        0.0
                    } else {
                        rng.gen_range(-2.0..2.0)
                    }
                })
                .collect();
            let b: f64 = rng.gen_range(-1.0..1.0);
            let dv = project_linf(&p, &w, b);
            let moved: Vec<f32> = p.iter().zip(&dv).map(|(a, b)| a + b).collect();
            assert!(moved.iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v)));
            let reach = |r: f64, up: bool| -> f64 {
                p.iter()
                    .zip(&w)
                    .map(|(&u, &v)| {
                        let lo = (u as f64 - r).max(0.0);
                        let hi = (u as f64 + r).min(1.0);
                        let pick = if (v > 0.0) == up { hi } else { lo };
                        v as f64 * pick
                    })
                    .sum()
            };
            let at = |u: &[f32]| {
                u.iter()
                    .zip(&w)
                    .map(|(&a, &v)| a as f64 * v as f64)
                    .sum::<f64>()
            };
            let up = b > at(&p);
            if (reach(1.0, up) - b) * (at(&p) - b) > 0.0 {
                // Out of the box's reach: every coordinate at its bound.
                assert!((reach(1.0, up) - at(&moved)).abs() < 1e-4, "case {case}");
                continue;
            }
            assert!((at(&moved) - b).abs() < 1e-4, "case {case}: off the plane");
            // Bisection: the smallest r whose box-clipped move reaches b.
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if (reach(mid, up) - b) * (at(&p) - b) > 0.0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            assert!((linf_norm(&dv) as f64 - hi).abs() < 1e-4, "case {case}");
        }
    }
}
