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
    use crate::testing::{check_grads, rand_tensor};

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
