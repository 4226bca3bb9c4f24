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
    use crate::testing::{
        central_diff, check_grads, f32s, f64s, grad_of, log_softmax_f64, prop_close, rand_in,
        rand_tensor,
    };
    use crate::{Mode, Tape};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// Naive f64 loss: `mean_i [logsumexp(z_i) - z_i[y_i]]`.
    fn naive_loss(z: &[f64], labels: &[usize], k: usize) -> f64 {
        let rows = z.chunks(k).zip(labels);
        rows.map(|(r, &l)| {
            let lse = r.iter().map(|v| v.exp()).sum::<f64>().ln();
            lse - r[l]
        })
        .sum::<f64>()
            / labels.len() as f64
    }

    /// Naive gradient, from the math: `d/dz_ij = (softmax(z_i)_j - [j == y_i]) / N`.
    fn naive_grad(z: &[f64], labels: &[usize], k: usize) -> Vec<f64> {
        let n = labels.len() as f64;
        let mut dz = vec![0f64; z.len()];
        for (i, &l) in labels.iter().enumerate() {
            let r = &z[i * k..(i + 1) * k];
            let total: f64 = r.iter().map(|v| v.exp()).sum();
            for j in 0..k {
                let onehot = if j == l { 1.0 } else { 0.0 };
                dz[i * k + j] = (r[j].exp() / total - onehot) / n;
            }
        }
        dz
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, k in 1usize..12,
            scale in prop::sample::select(vec![0.1f32, 1.0, 5.0, 20.0]),
            seed in 0u64..1000,
        ) {
            let z = rand_in(&[n, k], seed, -scale, scale);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1);
            let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
            let dl: f32 = rng.gen_range(-2.0..2.0);
            let mut t = Tape::new(&[], Mode::InputGrad);
            let zv = t.input(z.clone(), true);
            let loss = t.cross_entropy(zv, &labels).unwrap();
            prop_assert_eq!(t.shape(loss), &[] as &[usize]);
            let grads = t.backward_seeded(loss, &[dl], None).unwrap();

            let z64 = f64s(z.data());
            let dz_ref: Vec<f64> = naive_grad(&z64, &labels, k).iter().map(|g| g * dl as f64).collect();
            for (i, &want) in dz_ref.iter().enumerate() {
                let fd = dl as f64 * central_diff(|z| naive_loss(z, &labels, k), &z64, i, 1e-5);
                prop_assert!((want - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "naive dz[{}] {} vs {}", i, want, fd);
            }
            // The log-sum-exp with the max subtracted, as a second opinion on the loss.
            let lp = log_softmax_f64(&z64, k);
            let stable = -labels.iter().enumerate().map(|(i, &l)| lp[i * k + l]).sum::<f64>() / n as f64;
            let loss_ref = naive_loss(&z64, &labels, k);
            prop_assert!((stable - loss_ref).abs() <= 1e-9 * (1.0 + loss_ref.abs()));
            let what = |q: &str| format!("{q}: [{n}, {k}] labels {labels:?} scale {scale} seed {seed}");
            prop_close(&what("loss"), &[t.scalar(loss)], &[loss_ref as f32], 1e-5)?;
            prop_close(&what("dz"), &grad_of(&grads, zv, "dz")?, &f32s(&dz_ref), 1e-4)?;
        }
    }

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
