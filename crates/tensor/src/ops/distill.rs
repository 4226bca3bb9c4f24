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
    use crate::testing::{check_grads, rand_tensor};

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
