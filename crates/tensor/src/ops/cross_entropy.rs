//! Cross-entropy of `[N, K]` logits against integer labels, mean over the batch:
//! `CE = mean_i [logsumexp(z_i) - z_i[y_i]]` (`F.cross_entropy`).
//! Local derivative: `dz_i = (softmax(z_i) - onehot(y_i)) / N`.

use crate::error::{invalid, Result};
use crate::ops::log_softmax::{self, check};
use crate::tape::{GradStore, Op, Tape, Values, Var};

pub(crate) fn check_labels(op: &'static str, labels: &[usize], n: usize, k: usize) -> Result<()> {
    if labels.len() != n {
        return invalid(op, format!("{} labels for a batch of {n}", labels.len()));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return invalid(
            op,
            format!("label {l} at index {i} is out of range for {k} classes"),
        );
    }
    Ok(())
}

/// Forward kernel: (mean loss, log-probabilities).
pub fn forward(z: &[f32], labels: &[usize], k: usize) -> (f32, Vec<f32>) {
    let logp = log_softmax::forward(z, k);
    let n = labels.len().max(1);
    let total: f64 = logp
        .chunks_exact(k)
        .zip(labels)
        .map(|(r, &l)| -(r[l] as f64))
        .sum();
    ((total / n as f64) as f32, logp)
}

pub(crate) struct Saved {
    z: Var,
    labels: Vec<usize>,
    logp: Vec<f32>,
}

impl Tape<'_> {
    pub fn cross_entropy(&mut self, z: Var, labels: &[usize]) -> Result<Var> {
        let (n, k) = check("cross_entropy", self.shape(z))?;
        check_labels("cross_entropy", labels, n, k)?;
        let (loss, logp) = forward(self.value(z), labels, k);
        let labels = labels.to_vec();
        Ok(self.record("cross_entropy", vec![], vec![loss], &[z], || {
            Op::CrossEntropy(Saved { z, labels, logp })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let k = v.shape(s.z)[1];
    let scale = dy[0] / s.labels.len() as f32;
    let dz = g.acc(s.z);
    for ((dr, lr), &l) in dz
        .chunks_exact_mut(k)
        .zip(s.logp.chunks_exact(k))
        .zip(&s.labels)
    {
        for (j, (d, &lp)) in dr.iter_mut().zip(lr).enumerate() {
            let onehot = if j == l { 1.0 } else { 0.0 };
            *d += scale * (lp.exp() - onehot);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, rand_tensor};
    use crate::{Mode, Tape};

    #[test]
    fn gradients_match_finite_differences() {
        check_grads(&[rand_tensor(&[4, 5], 1)], |t, v| {
            t.cross_entropy(v[0], &[0, 4, 2, 2])
        });
    }

    #[test]
    fn uniform_logits_give_log_k() {
        let (loss, _) = super::forward(&[0.0; 10], &[3], 10);
        assert!((loss - 10f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn bad_labels_are_errors() {
        let mut t = Tape::new(&[], Mode::InputGrad);
        let z = t.input(rand_tensor(&[2, 3], 0), false);
        assert!(t.cross_entropy(z, &[0, 3]).is_err());
        assert!(t.cross_entropy(z, &[0]).is_err());
    }
}
