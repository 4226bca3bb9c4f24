//! Square Attack, l_inf (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
//! query-efficient black-box adversarial attack via random search", ECCV 2020): a
//! score-based attack that reads only the model's logits, never a gradient, so no
//! gradient masking (a saturated softmax, a shattered or obfuscated gradient) can hide
//! a model from it. AutoAttack runs it last, as the check that the gradient attacks
//! did not fail for the wrong reason.
//!
//! Random search on the margin `m(x) = z_y - max_{i != y} z_i` (the example is fooled
//! when it is negative), per example:
//!
//! - start at vertical stripes: `x + eps * s`, one sign `s` per (channel, column),
//!   clamped to [0, 1] (the paper's initialisation: l_inf adversarial directions of
//!   CNNs are often stripe-like);
//! - each iteration draws a square window of side `s_i` at a uniform position and one
//!   sign per channel, sets the window to `x_best + 2 eps sign` projected back onto the
//!   eps-ball around `x` and [0, 1] (so each pixel of the window lands on a vertex of
//!   the ball, `x +- eps`, where the box allows), queries the model once, and keeps the
//!   candidate if its margin is lower than the best so far;
//! - the side follows the paper's schedule: `s_i = round(sqrt(p_i * h * w))`, at least
//!   1 and at most `min(h, w) - 1`, with `p_i = p_init / 2^j` halved at iterations 10,
//!   50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000, rescaled to the query
//!   budget (`p_selection` of the authors' code; `p_init` 0.8 as AutoAttack's);
//! - as in the authors' reference code, a drawn window that would leave `x_best`
//!   unchanged (all its pixels already at the drawn vertex) draws its signs again, up to
//!   ten times, so fewer queries are wasted.
//!
//! An example stops at the first point the model misclassifies (its query is then
//! spent). Every example has its own random stream, drawn from the caller's generator at
//! the start, so an example's trajectory does not depend on which others in the batch
//! were fooled first, nor on the batch's size.

use crate::ball::with_batch;
use crate::pgd::{per_example, Outcome};
use crate::{AttackLoss, Classifier, Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc_tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SquareConfig {
    pub eps: f32,
    /// Iterations of the random search, each one query per example still robust (the
    /// start is one more): AutoAttack's standard budget is 5,000.
    pub queries: usize,
    /// The fraction of the image the first squares cover (0.8, AutoAttack's).
    pub p_init: f32,
}

impl SquareConfig {
    /// AutoAttack's standard settings: 5,000 queries, p_init 0.8.
    pub fn new(eps: f32) -> SquareConfig {
        SquareConfig {
            eps,
            queries: 5000,
            p_init: 0.8,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if !(self.eps >= 0.0 && self.eps.is_finite() && self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(Error::Config(format!(
                "Square needs eps >= 0 and p_init in (0, 1], got {self:?}"
            )));
        }
        Ok(())
    }
}

/// The fraction of pixels a square covers at iteration `it` of `queries`: the
/// authors' schedule for 10,000 iterations, rescaled.
pub fn square_fraction(p_init: f32, it: usize, queries: usize) -> f32 {
    let i = it * 10_000 / queries.max(1);
    let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        .iter()
        .filter(|&&b| i > b)
        .count();
    p_init / (1u32 << halvings) as f32
}

fn gather_labels(labels: &[usize], idx: &[usize]) -> Vec<usize> {
    idx.iter().map(|&i| labels[i]).collect()
}

/// `z_y - max_{i != y} z_i` for each row of `[N, K]` logits.
fn margins(logits: &Tensor, labels: &[usize]) -> Vec<f32> {
    let k = logits.shape().last().copied().unwrap_or(1).max(1);
    logits
        .data()
        .chunks(k)
        .zip(labels)
        .map(|(z, &y)| {
            let other = z
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != y)
                .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
            z[y] - other
        })
        .collect()
}

/// Square Attack (l_inf) on a batch `[N, C, H, W]`; see the module docs. `loss` in the
/// outcome is each example's final margin (negative when fooled). Deterministic for a
/// given `rng` state.
pub fn square_linf(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    cfg: &SquareConfig,
    rng: &mut StdRng,
) -> Result<Outcome> {
    cfg.check()?;
    let per = per_example(x, labels)?;
    let &[n, c, h, w] = x.shape() else {
        return Err(Error::Config(format!(
            "Square needs image batches [N, C, H, W], got {:?}",
            x.shape()
        )));
    };
    let eps = cfg.eps;
    let clean = x.data();
    let mut rngs: Vec<StdRng> = (0..n).map(|_| StdRng::seed_from_u64(rng.gen())).collect();

    // Vertical stripes: one sign per (channel, column).
    let mut best = vec![0f32; n * per];
    for (i, r) in rngs.iter_mut().enumerate() {
        for ch in 0..c {
            let signs: Vec<f32> = (0..w).map(|_| if r.gen() { eps } else { -eps }).collect();
            for row in 0..h {
                let at = i * per + (ch * h + row) * w;
                for col in 0..w {
                    best[at + col] = (clean[at + col] + signs[col]).clamp(0.0, 1.0);
                }
            }
        }
    }
    let logits = model.logits(&Tensor::new(x.shape(), best.clone())?)?;
    let k = logits.shape().last().copied().unwrap_or(0);
    AttackLoss::CrossEntropy.check(k, labels)?;
    let mut margin = margins(&logits, labels);
    let mut fooled: Vec<bool> = logits
        .argmax_rows()
        .iter()
        .zip(labels)
        .map(|(p, y)| p != y)
        .collect();

    let mut cand = vec![0f32; per];
    let mut live: Vec<usize> = (0..n).filter(|&i| !fooled[i]).collect();
    for it in 0..cfg.queries {
        if live.is_empty() || eps == 0.0 {
            break;
        }
        let p = square_fraction(cfg.p_init, it, cfg.queries);
        let side = ((p * (h * w) as f32).sqrt().round() as usize)
            .clamp(1, h.min(w).saturating_sub(1).max(1));
        // Each live example's candidate, built from its own stream.
        let mut batch = Vec::with_capacity(live.len() * per);
        for &i in &live {
            let r = &mut rngs[i];
            let (x0, xb) = (
                &clean[i * per..(i + 1) * per],
                &best[i * per..(i + 1) * per],
            );
            let (top, left) = (r.gen_range(0..=h - side), r.gen_range(0..=w - side));
            cand.copy_from_slice(xb);
            for _try in 0..10 {
                let mut changed = false;
                for ch in 0..c {
                    let delta = if r.gen() { 2.0 * eps } else { -2.0 * eps };
                    for row in top..top + side {
                        let at = (ch * h + row) * w;
                        for col in left..left + side {
                            let v = (xb[at + col] + delta)
                                .clamp(x0[at + col] - eps, x0[at + col] + eps)
                                .clamp(0.0, 1.0);
                            changed |= v != xb[at + col];
                            cand[at + col] = v;
                        }
                    }
                }
                if changed {
                    break;
                }
            }
            batch.extend_from_slice(&cand);
        }
        let query = Tensor::new(&with_batch(x.shape(), live.len()), batch)?;
        let logits = model.logits(&query)?;
        let m = margins(&logits, &gather_labels(labels, &live));
        let preds = logits.argmax_rows();
        let mut still = Vec::with_capacity(live.len());
        for (k, &i) in live.iter().enumerate() {
            fooled[i] = preds[k] != labels[i];
            // Keep the candidate if its margin improved (a fooling one always has).
            if m[k] < margin[i] || fooled[i] {
                margin[i] = m[k];
                best[i * per..(i + 1) * per].copy_from_slice(&query.data()[k * per..(k + 1) * per]);
            }
            if !fooled[i] {
                still.push(i);
            }
        }
        live = still;
    }
    Ok(Outcome {
        adv: Tensor::new(x.shape(), best)?,
        fooled,
        loss: margin,
        loss_trace: vec![],
    })
}
