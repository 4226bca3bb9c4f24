//! What an attack needs from a model.

use crate::Result;
use rcc_nn::{Loss, Model};
use rcc_tensor::Tensor;

/// A model an attack can query: logits for a batch, and the input gradient of the summed
/// per-example cross-entropy.
pub trait Classifier: Sync {
    /// Logits `[N, K]` (inference: no tape, batch norm on running statistics).
    fn logits(&self, x: &Tensor) -> Result<Tensor>;

    /// Per-example cross-entropy losses, the logits, and `d(sum_i loss_i)/dx`. Each
    /// example's gradient depends on that example only, so attacks can treat the batch
    /// as independent problems.
    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
    ) -> Result<(Vec<f32>, Tensor, Tensor)>;
}

/// `logsumexp(z_i) - z_i[y_i]` for each row of `[N, K]` logits.
pub fn per_example_ce(logits: &Tensor, labels: &[usize]) -> Vec<f32> {
    let k = logits.shape().last().copied().unwrap_or(1).max(1);
    logits
        .data()
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            (lse - row[y] as f64) as f32
        })
        .collect()
}

/// The dense model, through the engine's input-gradient mode (no parameter gradients,
/// no weight-gradient GEMMs).
impl Classifier for Model {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.infer(x)?)
    }

    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
    ) -> Result<(Vec<f32>, Tensor, Tensor)> {
        let (out, grad) = self.input_grad(x, labels, &Loss::CrossEntropy)?;
        let n = labels.len();
        let logits = Tensor::new(&[n, out.logits.len() / n.max(1)], out.logits)?;
        // The engine differentiates the batch mean; the sum's gradient is n times it.
        let scale = n as f32;
        let mut grad = grad;
        grad.data_mut().iter_mut().for_each(|g| *g *= scale);
        Ok((per_example_ce(&logits, labels), logits, grad))
    }
}
