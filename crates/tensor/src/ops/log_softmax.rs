//! `log_softmax` over dim 1 of `[N, K]` logits: `y = z - logsumexp(z)`.
//! Local derivative: `dz = dy - softmax(z) * sum(dy)` (softmax = exp(y), from the output).

use crate::error::{shape_err, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};

/// Forward kernel on one row, numerically stable (max subtracted), in f64.
pub fn row(z: &[f32], out: &mut [f32]) {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    for (o, &v) in out.iter_mut().zip(z) {
        *o = (v as f64 - lse) as f32;
    }
}

/// Forward kernel over `[N, K]`.
pub fn forward(z: &[f32], k: usize) -> Vec<f32> {
    let mut y = vec![0.0; z.len()];
    for (zr, yr) in z.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
        row(zr, yr);
    }
    y
}

pub(crate) struct Saved {
    x: Var,
}

pub(crate) fn check(op: &'static str, s: &[usize]) -> Result<(usize, usize)> {
    if s.len() != 2 || s[1] == 0 {
        return shape_err(op, "logits [N, K] with K >= 1", s);
    }
    Ok((s[0], s[1]))
}

impl Tape<'_> {
    pub fn log_softmax(&mut self, x: Var) -> Result<Var> {
        let (_, k) = check("log_softmax", self.shape(x))?;
        let y = forward(self.value(x), k);
        let shape = self.shape(x).to_vec();
        Ok(self.record("log_softmax", shape, y, &[x], || {
            Op::LogSoftmax(Saved { x })
        }))
    }
}

pub(crate) fn backward(s: &Saved, out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let k = v.shape(s.x)[1];
    let y = v.get(out);
    let dx = g.acc(s.x);
    for ((dxr, dyr), yr) in dx
        .chunks_exact_mut(k)
        .zip(dy.chunks_exact(k))
        .zip(y.chunks_exact(k))
    {
        let total: f32 = dyr.iter().sum();
        for ((d, &gy), &yv) in dxr.iter_mut().zip(dyr).zip(yr) {
            *d += gy - yv.exp() * total;
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

    /// Naive gradient of `sum(y * dy)` through the Jacobian of log-softmax, row by row:
    /// `dy_i/dz_j = [i == j] - softmax(z)_j`.
    fn naive_backward(z: &[f64], k: usize, dy: &[f64]) -> Vec<f64> {
        let y = log_softmax_f64(z, k);
        let mut dz = vec![0f64; z.len()];
        for r in 0..z.len() / k {
            for i in 0..k {
                for j in 0..k {
                    let jac = if i == j { 1.0 } else { 0.0 } - y[r * k + j].exp();
                    dz[r * k + j] += dy[r * k + i] * jac;
                }
            }
        }
        dz
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, k in 1usize..12,
            scale in prop::sample::select(vec![0.1f32, 1.0, 10.0, 40.0]),
            seed in 0u64..1000,
        ) {
            let z = rand_in(&[n, k], seed, -scale, scale);
            let dy = rand_tensor(&[n, k], seed + 1).into_data();
            let mut t = Tape::new(&[], Mode::InputGrad);
            let zv = t.input(z.clone(), true);
            let y = t.log_softmax(zv).unwrap();
            prop_assert_eq!(t.shape(y), &[n, k]);
            let grads = t.backward_seeded(y, &dy, None).unwrap();

            let (z64, dy64) = (f64s(z.data()), f64s(&dy));
            let dz_ref = naive_backward(&z64, k, &dy64);
            // The hand-written Jacobian against central differences of the f64 forward.
            let objective = |z: &[f64]| log_softmax_f64(z, k).iter().zip(&dy64).map(|(a, b)| a * b).sum::<f64>();
            for (i, &want) in dz_ref.iter().enumerate() {
                let fd = central_diff(objective, &z64, i, 1e-5);
                prop_assert!((want - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "naive dz[{}] {} vs {}", i, want, fd);
            }
            let what = |q: &str| format!("{q}: [{n}, {k}] scale {scale} seed {seed}");
            prop_close(&what("y"), t.value(y), &f32s(&log_softmax_f64(&z64, k)), 1e-5)?;
            prop_close(&what("dz"), &grad_of(&grads, zv, "dz")?, &f32s(&dz_ref), 1e-4)?;
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grads(&[rand_tensor(&[3, 5], 1)], |t, v| t.log_softmax(v[0]));
    }

    #[test]
    fn stable_for_large_logits() {
        let y = super::forward(&[1000.0, 1000.0, -1000.0], 3);
        assert!((y[0] - (-std::f32::consts::LN_2)).abs() < 1e-6 && y[2] < -1999.0);
    }
}
