//! FGSM with a random start (Wong, Rice & Kolter, "Fast is better than free", ICLR 2020):
//! `delta ~ U(-eps, eps)`, one signed step of `alpha` from `x + delta`, then projection
//! onto the eps-ball and clamping to [0, 1]. A cheap training attack (one gradient per
//! batch); with alpha about 1.25 eps it avoids FGSM training's catastrophic overfitting.

use crate::fgsm::sign;
use crate::{AttackLoss, Classifier, Error, Result};
use rand::Rng;
use rand::RngCore;
use rcc_tensor::Tensor;

pub fn fgsm_rs(
    model: &impl Classifier,
    x: &Tensor,
    labels: &[usize],
    eps: f32,
    alpha: f32,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    if !(eps >= 0.0 && eps.is_finite() && alpha >= 0.0 && alpha.is_finite()) {
        return Err(Error::Config(format!(
            "FGSM-RS needs eps >= 0 and alpha >= 0, got {eps}, {alpha}"
        )));
    }
    let clean = x.data();
    let start: Vec<f32> = clean
        .iter()
        .map(|&v| {
            if eps > 0.0 {
                (v + rng.gen_range(-eps..=eps)).clamp(0.0, 1.0)
            } else {
                v
            }
        })
        .collect();
    let start = Tensor::new(x.shape(), start)?;
    let (_, _, g) = model.loss_and_input_grad(&start, labels, AttackLoss::CrossEntropy)?;
    let adv = start
        .data()
        .iter()
        .zip(clean)
        .zip(g.data())
        .map(|((&s, &c), &gv)| {
            (s + alpha * sign(gv))
                .clamp(c - eps, c + eps)
                .clamp(0.0, 1.0)
        })
        .collect();
    Ok(Tensor::new(x.shape(), adv)?)
}
