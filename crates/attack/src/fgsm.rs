//! FGSM (Goodfellow et al. 2015): one step of size eps along the sign of the input
//! gradient, `x' = clamp(x + eps * sign(grad), 0, 1)`.

use crate::{AttackLoss, Classifier, Error, Result};
use rcc_tensor::Tensor;

pub fn fgsm(model: &impl Classifier, x: &Tensor, labels: &[usize], eps: f32) -> Result<Tensor> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::Config(format!(
            "FGSM eps must be a finite number >= 0, got {eps}"
        )));
    }
    let (_, _, g) = model.loss_and_input_grad(x, labels, AttackLoss::CrossEntropy)?;
    let adv = x
        .data()
        .iter()
        .zip(g.data())
        .map(|(&xv, &gv)| (xv + eps * sign(gv)).clamp(0.0, 1.0))
        .collect();
    Ok(Tensor::new(x.shape(), adv)?)
}

/// sign(g) with sign(0) = 0 (no step where the gradient vanishes).
pub(crate) fn sign(g: f32) -> f32 {
    if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        0.0
    }
}
