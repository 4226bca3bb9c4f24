//! The TRADES loss (Zhang et al., ICML 2019, eq. 5; their `trades_loss`):
//!
//! `L = (1/N) sum_i [ CE(z_i, y_i) + b * KL(p_i || q_i) ]`, `p = softmax(z)` on the clean
//! batch, `q = softmax(z')` on the adversarial one,
//! `KL(p || q) = sum_k p_k (log p_k - log q_k)`: the reference code's
//! `F.cross_entropy(model(x), y) + b / N * KLDivLoss(sum)(log_softmax(model(x')), softmax(model(x)))`,
//! where the gradient flows through both passes of the same model.
//!
//! Local derivatives, with `D_ik = log p_ik - log q_ik` and `KL_i = sum_k p_ik D_ik`:
//! `dz_ik = (p_ik - onehot(y_i)_k)/N + b p_ik (D_ik - KL_i)/N` (clean logits: the KL's
//! first argument moves too), `dz'_ik = b (q_ik - p_ik)/N` (adversarial logits).

use crate::error::{invalid, shape_err, Result};
use crate::ops::cross_entropy::check_labels;
use crate::ops::log_softmax::{self, check};
use crate::tape::{GradStore, Op, Tape, Values, Var};

pub(crate) struct Saved {
    clean: Var,
    adv: Var,
    labels: Vec<usize>,
    beta: f32,
    /// log softmax of the clean and the adversarial logits, row-major [N, K].
    logp: Vec<f32>,
    logq: Vec<f32>,
}

/// Forward kernel: (loss, log softmax(z), log softmax(z')).
pub fn forward(
    clean: &[f32],
    adv: &[f32],
    labels: &[usize],
    k: usize,
    beta: f32,
) -> (f32, Vec<f32>, Vec<f32>) {
    let n = labels.len().max(1) as f64;
    let logp = log_softmax::forward(clean, k);
    let logq = log_softmax::forward(adv, k);
    let ce: f64 = logp
        .chunks_exact(k)
        .zip(labels)
        .map(|(r, &l)| -(r[l] as f64))
        .sum::<f64>();
    let kl: f64 = logp
        .iter()
        .zip(&logq)
        .map(|(&lp, &lq)| (lp as f64).exp() * (lp as f64 - lq as f64))
        .sum::<f64>();
    (((ce + beta as f64 * kl) / n) as f32, logp, logq)
}

impl Tape<'_> {
    /// The TRADES loss of the clean logits `clean [N, K]` and the adversarial logits
    /// `adv [N, K]` of the same examples, with labels and the KL weight `beta` (TRADES's
    /// `1/lambda`: 1 in their MNIST script `train_trades_mnist.py`, 6 for CIFAR-10).
    pub fn trades_loss(
        &mut self,
        clean: Var,
        adv: Var,
        labels: &[usize],
        beta: f32,
    ) -> Result<Var> {
        let (n, k) = check("trades_loss", self.shape(clean))?;
        if self.shape(adv) != self.shape(clean) {
            return shape_err(
                "trades_loss",
                format!("adversarial logits [{n}, {k}] like the clean ones"),
                self.shape(adv),
            );
        }
        check_labels("trades_loss", labels, n, k)?;
        if !(beta.is_finite() && beta >= 0.0) {
            return invalid("trades_loss", format!("need beta >= 0, got {beta}"));
        }
        let (loss, logp, logq) = forward(self.value(clean), self.value(adv), labels, k, beta);
        let labels = labels.to_vec();
        Ok(
            self.record("trades_loss", vec![], vec![loss], &[clean, adv], || {
                Op::Trades(Saved {
                    clean,
                    adv,
                    labels,
                    beta,
                    logp,
                    logq,
                })
            }),
        )
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let k = v.shape(s.clean)[1];
    let n = s.labels.len() as f32;
    let (w_ce, w_kl) = (dy[0] / n, dy[0] * s.beta / n);
    if v.requires_grad(s.clean) {
        let dz = g.acc(s.clean);
        for (i, &l) in s.labels.iter().enumerate() {
            let row = i * k..(i + 1) * k;
            let (lp, lq) = (&s.logp[row.clone()], &s.logq[row]);
            // KL_i in f64: a difference of nearly equal terms when p ~ q.
            let kl: f64 = lp
                .iter()
                .zip(lq)
                .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
                .sum();
            for j in 0..k {
                let p = lp[j].exp();
                let onehot = if j == l { 1.0 } else { 0.0 };
                let d = (lp[j] as f64 - lq[j] as f64 - kl) as f32;
                dz[i * k + j] += w_ce * (p - onehot) + w_kl * p * d;
            }
        }
    }
    if v.requires_grad(s.adv) {
        let dz = g.acc(s.adv);
        for (e, (&lp, &lq)) in s.logp.iter().zip(&s.logq).enumerate() {
            dz[e] += w_kl * (lq.exp() - lp.exp());
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

    /// Naive f64 loss, straight from the definition:
    /// `(1/N) sum_i [-log softmax(z_i)[y_i] + b sum_k p_ik (log p_ik - log q_ik)]`.
    fn naive_loss(z: &[f64], za: &[f64], labels: &[usize], k: usize, b: f64) -> f64 {
        let n = labels.len() as f64;
        let (logp, logq) = (log_softmax_f64(z, k), log_softmax_f64(za, k));
        let ce = -labels
            .iter()
            .enumerate()
            .map(|(i, &l)| logp[i * k + l])
            .sum::<f64>();
        let kl = logp
            .iter()
            .zip(&logq)
            .map(|(lp, lq)| lp.exp() * (lp - lq))
            .sum::<f64>();
        (ce + b * kl) / n
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The op's loss and both gradients against the naive f64 loss and its central
        /// differences, over random shapes, scales and seeds of the backward pass.
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, k in 1usize..12,
            beta in prop_oneof![1 => Just(0.0f32), 4 => 0.0f32..=8.0],
            scale in prop::sample::select(vec![0.5f32, 3.0, 10.0]),
            seed in 0u64..1000,
        ) {
            let z = rand_in(&[n, k], seed, -scale, scale);
            let za = rand_in(&[n, k], seed + 1, -scale, scale);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 2);
            let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
            let dl: f32 = rng.gen_range(-2.0..2.0);
            let mut t = Tape::new(&[], Mode::InputGrad);
            let (zv, zav) = (t.input(z.clone(), true), t.input(za.clone(), true));
            let loss = t.trades_loss(zv, zav, &labels, beta).unwrap();
            prop_assert_eq!(t.shape(loss), &[] as &[usize]);
            let grads = t.backward_seeded(loss, &[dl], None).unwrap();

            let (z64, za64, b) = (f64s(z.data()), f64s(za.data()), beta as f64);
            let what = |q: &str| format!("{q}: [{n}, {k}] beta {beta} scale {scale} labels {labels:?} seed {seed}");
            let loss_ref = naive_loss(&z64, &za64, &labels, k, b);
            prop_close(&what("loss"), &[t.scalar(loss)], &[loss_ref as f32], 1e-5)?;
            let fd_clean: Vec<f64> = (0..z64.len())
                .map(|i| dl as f64 * central_diff(|z| naive_loss(z, &za64, &labels, k, b), &z64, i, 1e-5))
                .collect();
            let fd_adv: Vec<f64> = (0..za64.len())
                .map(|i| dl as f64 * central_diff(|za| naive_loss(&z64, za, &labels, k, b), &za64, i, 1e-5))
                .collect();
            prop_close(&what("dz"), &grad_of(&grads, zv, "dz")?, &f32s(&fd_clean), 1e-4)?;
            prop_close(&what("dz'"), &grad_of(&grads, zav, "dz'")?, &f32s(&fd_adv), 1e-4)?;
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for beta in [0.0, 1.0, 6.0] {
            check_grads(
                &[rand_tensor(&[3, 4], 1), rand_tensor(&[3, 4], 2)],
                |t, v| t.trades_loss(v[0], v[1], &[1, 0, 3], beta),
            );
        }
    }

    /// With equal clean and adversarial logits the KL term vanishes and the loss is the
    /// cross-entropy; beta 0 is the cross-entropy whatever the adversarial logits.
    #[test]
    fn equal_logits_or_beta_zero_give_cross_entropy() {
        let z = rand_tensor(&[2, 5], 3).into_data();
        let za = rand_tensor(&[2, 5], 4).into_data();
        let (ce, _) = crate::ops::cross_entropy::forward(&z, &[1, 4], 5);
        let (same, ..) = super::forward(&z, &z, &[1, 4], 5, 6.0);
        let (b0, ..) = super::forward(&z, &za, &[1, 4], 5, 0.0);
        let (b6, ..) = super::forward(&z, &za, &[1, 4], 5, 6.0);
        assert!((same - ce).abs() < 1e-6 && (b0 - ce).abs() < 1e-6);
        assert!(b6 > ce + 1e-3, "a KL between different logits is positive");
    }

    #[test]
    fn bad_shapes_labels_and_beta_are_errors() {
        let mut t = Tape::new(&[], Mode::InputGrad);
        let a = t.input(rand_tensor(&[2, 3], 1), true);
        let b = t.input(rand_tensor(&[2, 4], 2), true);
        let c = t.input(rand_tensor(&[2, 3], 3), true);
        assert!(t.trades_loss(a, b, &[0, 1], 1.0).is_err());
        assert!(t.trades_loss(a, c, &[0, 3], 1.0).is_err());
        assert!(t.trades_loss(a, c, &[0], 1.0).is_err());
        assert!(t.trades_loss(a, c, &[0, 1], -1.0).is_err());
        assert!(t.trades_loss(a, c, &[0, 1], f32::NAN).is_err());
        assert!(t.trades_loss(a, c, &[0, 1], 6.0).is_ok());
    }
}
