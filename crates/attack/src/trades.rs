//! TRADES's inner maximisation (Zhang et al., ICML 2019, eq. 5; their `trades_loss`): the
//! point of the l_inf eps-ball around `x` whose prediction is furthest, in KL, from the
//! prediction on `x`. From `x + 0.001 N(0, 1)`, `steps` signed-gradient ascent steps of
//! `step_size` on `KL(p(x) || p(x'))`, with `p(x)` the model's softmax on the clean batch
//! (held fixed), each projected onto the ball and clamped to [0, 1]. Unlike PGD it reads
//! no label: it pushes the prediction away from the model's own, which the TRADES loss
//! (`rcc_tensor`'s `trades_loss`) then pulls back.
//!
//! The model is in evaluation mode throughout, as in their code (`model.eval()` around
//! the attack). One difference: the start is clamped to [0, 1] (their first forward pass
//! sees pixels a few thousandths outside it: the noise is 0.001 N(0, 1)).
//! [`trades_pgd_from`] runs the ascent from a given start; `tests/trades_reference.rs`
//! checks it against PyTorch running their loop (`scripts/trades_reference.py`).

use crate::ball::Norm;
use crate::{Error, Result};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use rcc_nn::Model;
use rcc_tensor::Tensor;

/// The softmax of each row of `[N, K]` logits, in f64 for the subtraction that follows
/// (one buffer, filled row by row in place).
fn softmax_rows(z: &[f32], k: usize) -> Vec<f64> {
    let mut out: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    for row in out.chunks_mut(k) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.iter_mut().for_each(|v| *v = (*v - m).exp());
        let s: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    out
}

/// TRADES's adversarial batch for `x` (see the module docs): `steps` signed steps of
/// `step_size` in the l_inf ball of radius `eps`, from TRADES's Gaussian start.
/// Deterministic for a given `rng` state.
pub fn trades_pgd(
    model: &Model,
    x: &Tensor,
    eps: f32,
    steps: usize,
    step_size: f32,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    check(x, eps, step_size)?;
    let per = x.numel() / x.shape()[0];
    let clean = x.data();
    let mut start: Vec<f32> = clean
        .iter()
        .map(|&v| {
            let noise: f64 = StandardNormal.sample(&mut *rng);
            v + 0.001 * noise as f32
        })
        .collect();
    for (row, c) in start.chunks_mut(per).zip(clean.chunks(per)) {
        Norm::Linf.project(row, c, eps);
    }
    trades_pgd_from(
        model,
        x,
        Tensor::new(x.shape(), start)?,
        eps,
        steps,
        step_size,
    )
}

/// The ascent of [`trades_pgd`] from a given `start` (same shape as `x`), used as it is:
/// not projected. [`trades_pgd`] passes TRADES's Gaussian start projected onto the ball
/// and [0, 1]; an unprojected `x + 0.001 N(0, 1)` gives their reference loop exactly.
/// Every step is projected onto the ball and clamped to [0, 1].
pub fn trades_pgd_from(
    model: &Model,
    x: &Tensor,
    start: Tensor,
    eps: f32,
    steps: usize,
    step_size: f32,
) -> Result<Tensor> {
    check(x, eps, step_size)?;
    if start.shape() != x.shape() {
        return Err(Error::Config(format!(
            "TRADES: a start of shape {:?} for a batch of shape {:?}",
            start.shape(),
            x.shape()
        )));
    }
    let n = x.shape()[0];
    let per = x.numel() / n;
    let clean = x.data();
    let z = model.infer(x)?;
    let k = z.numel() / n;
    let p = softmax_rows(z.data(), k);
    let mut cur = start.into_data();
    for _ in 0..steps {
        let xb = Tensor::new(x.shape(), cur)?;
        // d/dz' of sum_i KL(p_i || softmax(z'_i)) is softmax(z') - p, row by row.
        let (_, g) = model.input_vjp(&xb, |za| {
            let q = softmax_rows(za, k);
            q.iter().zip(&p).map(|(&a, &b)| (a - b) as f32).collect()
        })?;
        cur = xb.into_data();
        for ((row, c), gr) in cur
            .chunks_mut(per)
            .zip(clean.chunks(per))
            .zip(g.data().chunks(per))
        {
            Norm::Linf.step(row, gr, step_size);
            Norm::Linf.project(row, c, eps);
        }
    }
    Ok(Tensor::new(x.shape(), cur)?)
}

fn check(x: &Tensor, eps: f32, step_size: f32) -> Result<()> {
    let ok = |v: f32| v >= 0.0 && v.is_finite();
    if !(ok(eps) && ok(step_size)) || x.shape().is_empty() || x.shape()[0] == 0 {
        return Err(Error::Config(format!(
            "TRADES needs eps >= 0, step size >= 0 and a non-empty batch, got eps {eps}, step {step_size}, batch {:?}",
            x.shape()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rcc_nn::Arch;

    /// `sum_i KL(p_i || q_i)` for rows of probabilities `p` and logits `z'`.
    fn kl_sum(p: &[f64], z_adv: &[f32], k: usize) -> f64 {
        let q = softmax_rows(z_adv, k);
        p.iter()
            .zip(&q)
            .filter(|(&a, _)| a > 0.0)
            .map(|(&a, &b)| a * (a.ln() - b.max(f64::MIN_POSITIVE).ln()))
            .sum()
    }

    fn batch() -> Tensor {
        Tensor::from_fn(&[4, 1, 28, 28], |i| ((i * 37) % 101) as f32 / 101.0)
    }

    /// Every point is in the eps-ball and in [0, 1]; the ascent raises the KL from its
    /// start (about 0) by orders of magnitude; the same seed gives the same batch.
    #[test]
    fn the_ascent_stays_in_the_ball_and_raises_the_kl() {
        let mut m = Model::new(Arch::LenetAdv(1), 3);
        m.params.iter_mut().for_each(|w| *w *= 2.0);
        let x = batch();
        let p = softmax_rows(m.infer(&x).unwrap().data(), 10);
        let adv = |steps: usize, seed: u64| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            trades_pgd(&m, &x, 0.3, steps, 0.01, &mut rng).unwrap()
        };
        let start = adv(0, 1);
        let after = adv(40, 1);
        for a in [&start, &after] {
            for (&v, &c) in a.data().iter().zip(x.data()) {
                assert!((0.0..=1.0).contains(&v) && (v - c).abs() <= 0.3 + 1e-6);
            }
        }
        let kl = |a: &Tensor| kl_sum(&p, m.infer(a).unwrap().data(), 10);
        let (k0, k40) = (kl(&start), kl(&after));
        assert!(k0 < 1e-3 && k40 > 100.0 * k0.max(1e-6), "{k0} -> {k40}");
        assert_eq!(after, adv(40, 1));
        assert_ne!(after, adv(40, 2));
        // eps 0 leaves the batch as it is.
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(trades_pgd(&m, &x, 0.0, 3, 0.01, &mut rng).unwrap(), x);
        assert!(trades_pgd(&m, &x, -0.1, 3, 0.01, &mut rng).is_err());
    }

    /// `trades_pgd` is `trades_pgd_from` from `x + 0.001 N(0, 1)` projected onto the ball
    /// and [0, 1], drawn from the same rng; a start of the wrong shape is an error.
    #[test]
    fn trades_pgd_is_the_ascent_from_its_projected_gaussian_start() {
        let mut m = Model::new(Arch::LenetAdv(1), 5);
        m.params.iter_mut().for_each(|w| *w *= 2.0);
        let x = batch();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let got = trades_pgd(&m, &x, 0.3, 5, 0.075, &mut rng).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut start: Vec<f32> = x
            .data()
            .iter()
            .map(|&v| {
                let noise: f64 = StandardNormal.sample(&mut rng);
                v + 0.001 * noise as f32
            })
            .collect();
        for (row, c) in start.chunks_mut(784).zip(x.data().chunks(784)) {
            Norm::Linf.project(row, c, 0.3);
        }
        let start = Tensor::new(x.shape(), start).unwrap();
        assert_eq!(got, trades_pgd_from(&m, &x, start, 0.3, 5, 0.075).unwrap());
        let short = Tensor::from_fn(&[3, 1, 28, 28], |_| 0.5);
        assert!(trades_pgd_from(&m, &x, short, 0.3, 5, 0.075).is_err());
    }
}
