//! The distillation loss of method.md section 1:
//!
//! `L = (1 - a) * CE(z, y) + a * t^2 * KL(softmax(T/t) || softmax(z/t))`,
//! `KL = (1/N) sum_i sum_k p_ik (log p_ik - log q_ik)`, `p = softmax(T/t)` (teacher,
//! constant), `log q = log_softmax(z/t)`: `F.kl_div(..., reduction='batchmean')`.
//!
//! Local derivative: `dz = (1-a)(softmax(z) - onehot(y))/N + a*t*(q - p)/N`.
//! The teacher logits are plain data: the teacher gets no gradient.

use crate::error::{invalid, shape_err, Result};
use crate::ops::cross_entropy::check_labels;
use crate::ops::log_softmax::{self, check};
use crate::tape::{GradStore, Op, Tape, Values, Var};

/// Weight `a` of the KL term and temperature `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistillCfg {
    pub alpha: f32,
    pub temperature: f32,
}

pub(crate) struct Saved {
    z: Var,
    labels: Vec<usize>,
    cfg: DistillCfg,
    /// softmax(z) and softmax(z/t) and softmax(T/t), row-major [N, K].
    p_student: Vec<f32>,
    q: Vec<f32>,
    p_teacher: Vec<f32>,
}

/// Forward kernel: (loss, softmax(z), softmax(z/t), softmax(T/t)).
pub fn forward(
    z: &[f32],
    teacher: &[f32],
    labels: &[usize],
    k: usize,
    cfg: DistillCfg,
) -> (f32, Vec<f32>, Vec<f32>, Vec<f32>) {
    let t = cfg.temperature;
    let n = labels.len().max(1) as f64;
    let logp_s = log_softmax::forward(z, k);
    let scaled = |v: &[f32]| v.iter().map(|&x| x / t).collect::<Vec<f32>>();
    let logq = log_softmax::forward(&scaled(z), k);
    let logp_t = log_softmax::forward(&scaled(teacher), k);
    let ce: f64 = logp_s
        .chunks_exact(k)
        .zip(labels)
        .map(|(r, &l)| -(r[l] as f64))
        .sum::<f64>()
        / n;
    let kl: f64 = logp_t
        .iter()
        .zip(&logq)
        .map(|(&lp, &lq)| (lp as f64).exp() * (lp as f64 - lq as f64))
        .sum::<f64>()
        / n;
    let a = cfg.alpha as f64;
    let loss = (1.0 - a) * ce + a * (t as f64).powi(2) * kl;
    let exp = |v: Vec<f32>| v.into_iter().map(f32::exp).collect::<Vec<f32>>();
    (loss as f32, exp(logp_s), exp(logq), exp(logp_t))
}

impl Tape<'_> {
    /// Distillation loss of student logits `z [N, K]` against labels and fixed teacher
    /// logits `[N, K]`.
    pub fn distill_loss(
        &mut self,
        z: Var,
        labels: &[usize],
        teacher: &[f32],
        cfg: DistillCfg,
    ) -> Result<Var> {
        let (n, k) = check("distill_loss", self.shape(z))?;
        check_labels("distill_loss", labels, n, k)?;
        if teacher.len() != n * k {
            return shape_err(
                "distill_loss",
                format!("teacher logits [{n}, {k}]"),
                teacher.len(),
            );
        }
        if !(0.0..=1.0).contains(&cfg.alpha) || cfg.temperature.is_nan() || cfg.temperature <= 0.0 {
            return invalid(
                "distill_loss",
                format!("need 0 <= alpha <= 1 and temperature > 0, got {cfg:?}"),
            );
        }
        let (loss, p_student, q, p_teacher) = forward(self.value(z), teacher, labels, k, cfg);
        let labels = labels.to_vec();
        Ok(self.record("distill_loss", vec![], vec![loss], &[z], || {
            Op::Distill(Saved {
                z,
                labels,
                cfg,
                p_student,
                q,
                p_teacher,
            })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let k = v.shape(s.z)[1];
    let n = s.labels.len() as f32;
    let (a, t) = (s.cfg.alpha, s.cfg.temperature);
    let (w_ce, w_kl) = (dy[0] * (1.0 - a) / n, dy[0] * a * t / n);
    let dz = g.acc(s.z);
    for (i, &l) in s.labels.iter().enumerate() {
        for j in 0..k {
            let e = i * k + j;
            let onehot = if j == l { 1.0 } else { 0.0 };
            dz[e] += w_ce * (s.p_student[e] - onehot) + w_kl * (s.q[e] - s.p_teacher[e]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DistillCfg;
    use crate::testing::{
        central_diff, check_grads, f32s, f64s, grad_of, log_softmax_f64, prop_close, rand_in,
        rand_tensor,
    };
    use crate::{Mode, Tape};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// Naive f64 loss, straight from the definition:
    /// `(1-a) * mean_i(-log softmax(z_i)[y_i]) + a t^2 (1/N) sum p (log p - log q)`,
    /// `p = softmax(T/t)`, `q = softmax(z/t)`.
    fn naive_loss(z: &[f64], teacher: &[f64], labels: &[usize], k: usize, a: f64, t: f64) -> f64 {
        let n = labels.len() as f64;
        let logp_s = log_softmax_f64(z, k);
        let ce = -labels
            .iter()
            .enumerate()
            .map(|(i, &l)| logp_s[i * k + l])
            .sum::<f64>()
            / n;
        let scaled = |v: &[f64]| v.iter().map(|x| x / t).collect::<Vec<_>>();
        let logp = log_softmax_f64(&scaled(teacher), k);
        let logq = log_softmax_f64(&scaled(z), k);
        let kl = logp
            .iter()
            .zip(&logq)
            .map(|(lp, lq)| lp.exp() * (lp - lq))
            .sum::<f64>()
            / n;
        (1.0 - a) * ce + a * t * t * kl
    }

    /// The hand-written gradient:
    /// `(1-a)(softmax(z) - onehot(y))/N + a t (softmax(z/t) - softmax(T/t))/N`.
    fn naive_grad(
        z: &[f64],
        teacher: &[f64],
        labels: &[usize],
        k: usize,
        a: f64,
        t: f64,
    ) -> Vec<f64> {
        let n = labels.len() as f64;
        let softmax = |v: Vec<f64>| {
            log_softmax_f64(&v, k)
                .into_iter()
                .map(f64::exp)
                .collect::<Vec<_>>()
        };
        let s = softmax(z.to_vec());
        let q = softmax(z.iter().map(|x| x / t).collect());
        let p = softmax(teacher.iter().map(|x| x / t).collect());
        (0..z.len())
            .map(|e| {
                let onehot = if e % k == labels[e / k] { 1.0 } else { 0.0 };
                (1.0 - a) * (s[e] - onehot) / n + a * t * (q[e] - p[e]) / n
            })
            .collect()
    }

    fn alpha() -> impl Strategy<Value = f32> {
        prop_oneof![1 => Just(0.0f32), 1 => Just(1.0f32), 4 => 0.0f32..=1.0]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, k in 1usize..12,
            alpha in alpha(), temperature in 0.5f32..=8.0,
            scale in prop::sample::select(vec![0.5f32, 3.0, 10.0]),
            seed in 0u64..1000,
        ) {
            let cfg = DistillCfg { alpha, temperature };
            let z = rand_in(&[n, k], seed, -scale, scale);
            let teacher = rand_in(&[n, k], seed + 1, -scale, scale).into_data();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 2);
            let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
            let dl: f32 = rng.gen_range(-2.0..2.0);
            let mut t = Tape::new(&[], Mode::InputGrad);
            let zv = t.input(z.clone(), true);
            let loss = t.distill_loss(zv, &labels, &teacher, cfg).unwrap();
            prop_assert_eq!(t.shape(loss), &[] as &[usize]);
            let grads = t.backward_seeded(loss, &[dl], None).unwrap();

            let (z64, t64) = (f64s(z.data()), f64s(&teacher));
            let (a, tt) = (alpha as f64, temperature as f64);
            let dz_ref: Vec<f64> = naive_grad(&z64, &t64, &labels, k, a, tt)
                .iter()
                .map(|g| g * dl as f64)
                .collect();
            // The hand-written gradient against central differences of the naive loss.
            for (i, &want) in dz_ref.iter().enumerate() {
                let fd = dl as f64
                    * central_diff(|z| naive_loss(z, &t64, &labels, k, a, tt), &z64, i, 1e-5);
                prop_assert!((want - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "naive dz[{}] {} vs {}", i, want, fd);
            }
            let what = |q: &str| format!("{q}: [{n}, {k}] {cfg:?} scale {scale} labels {labels:?} seed {seed}");
            let loss_ref = naive_loss(&z64, &t64, &labels, k, a, tt);
            prop_close(&what("loss"), &[t.scalar(loss)], &[loss_ref as f32], 1e-5)?;
            prop_close(&what("dz"), &grad_of(&grads, zv, "dz")?, &f32s(&dz_ref), 1e-4)?;
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let teacher = rand_tensor(&[3, 4], 7).into_data();
        for (alpha, temperature) in [(0.7, 4.0), (0.0, 1.0), (1.0, 2.0)] {
            let cfg = DistillCfg { alpha, temperature };
            check_grads(&[rand_tensor(&[3, 4], 1)], |t, v| {
                t.distill_loss(v[0], &[1, 0, 3], &teacher, cfg)
            });
        }
    }

    #[test]
    fn alpha_zero_is_cross_entropy_and_kl_of_equal_logits_is_zero() {
        let z = rand_tensor(&[2, 5], 3).into_data();
        let (ce, _) = crate::ops::cross_entropy::forward(&z, &[1, 4], 5);
        let (l0, ..) = super::forward(
            &z,
            &z,
            &[1, 4],
            5,
            DistillCfg {
                alpha: 0.0,
                temperature: 4.0,
            },
        );
        let (l1, ..) = super::forward(
            &z,
            &z,
            &[1, 4],
            5,
            DistillCfg {
                alpha: 1.0,
                temperature: 4.0,
            },
        );
        assert!((l0 - ce).abs() < 1e-6);
        assert!(l1.abs() < 1e-6);
    }
}
