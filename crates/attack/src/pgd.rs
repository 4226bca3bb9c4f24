//! PGD with an l_inf ball (Madry et al. 2018): from a random start in the eps-ball,
//! `steps` signed-gradient steps of `step_size`, each projected back onto the ball around
//! the clean input and clamped to [0, 1]. With `restarts` > 1 every example keeps the
//! first perturbation that fools the model, or else the one with the highest loss.

use crate::fgsm::sign;
use crate::{Classifier, Error, Result};
use rand::rngs::StdRng;
use rand::Rng;
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
        PgdConfig { eps: 0.3, steps: 40, step_size: 0.01, random_start: true, restarts: 1 }
    }

    fn check(&self) -> Result<()> {
        if !(self.eps >= 0.0 && self.eps.is_finite() && self.step_size >= 0.0 && self.step_size.is_finite()) || self.restarts == 0 {
            return Err(Error::Config(format!("PGD needs eps >= 0, step size >= 0 and at least one restart, got {self:?}")));
        }
        Ok(())
    }
}

/// Per-example result of an attack: which examples it fooled, and their final loss.
fn fooled(logits: &Tensor, labels: &[usize]) -> Vec<bool> {
    logits.argmax_rows().iter().zip(labels).map(|(p, y)| p != y).collect()
}

/// One PGD run from `start`: returns the adversarial batch, its per-example losses and
/// whether each example is misclassified.
fn pgd_run(model: &impl Classifier, x: &Tensor, labels: &[usize], cfg: &PgdConfig, rng: &mut StdRng) -> Result<(Tensor, Vec<f32>, Vec<bool>)> {
    let (eps, a) = (cfg.eps, cfg.step_size);
    let clean = x.data();
    let mut adv: Vec<f32> = if cfg.random_start && eps > 0.0 {
        clean.iter().map(|&v| (v + rng.gen_range(-eps..=eps)).clamp(0.0, 1.0)).collect()
    } else {
        clean.to_vec()
    };
    for _ in 0..cfg.steps {
        let xa = Tensor::new(x.shape(), adv)?;
        let (_, _, g) = model.loss_and_input_grad(&xa, labels)?;
        adv = xa.into_data();
        for ((v, &c), &gv) in adv.iter_mut().zip(clean).zip(g.data()) {
            // Step, project onto the l_inf ball around the clean input, clamp to pixels.
            *v = (*v + a * sign(gv)).clamp(c - eps, c + eps).clamp(0.0, 1.0);
        }
    }
    let xa = Tensor::new(x.shape(), adv)?;
    let logits = model.logits(&xa)?;
    let losses = crate::per_example_ce(&logits, labels);
    let f = fooled(&logits, labels);
    Ok((xa, losses, f))
}

/// PGD-l_inf with restarts. Deterministic for a given `rng` state.
pub fn pgd_linf(model: &impl Classifier, x: &Tensor, labels: &[usize], cfg: &PgdConfig, rng: &mut StdRng) -> Result<Tensor> {
    cfg.check()?;
    let (mut best, mut best_loss, mut best_fooled) = pgd_run(model, x, labels, cfg, rng)?;
    let per = x.numel() / labels.len().max(1);
    for _ in 1..cfg.restarts {
        if best_fooled.iter().all(|&f| f) {
            break;
        }
        let (cand, loss, f) = pgd_run(model, x, labels, cfg, rng)?;
        for i in 0..labels.len() {
            // Keep the first fooling perturbation; among non-fooling ones, the highest loss.
            let take = !best_fooled[i] && (f[i] || loss[i] > best_loss[i]);
            if take {
                best.data_mut()[i * per..(i + 1) * per].copy_from_slice(&cand.data()[i * per..(i + 1) * per]);
                (best_loss[i], best_fooled[i]) = (loss[i], f[i]);
            }
        }
    }
    Ok(best)
}
