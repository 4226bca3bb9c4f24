//! Fully connected layer: `y = x @ w^T + b`, PyTorch's `F.linear` (w is `[out, in]`),
//! optionally followed by a fused ReLU (the backward masks dy by `y > 0`).
//!
//! The transposed weight is a stride swap, not a copy. The local derivatives:
//! `dx = dy @ w`, `dw = dy^T @ x`, `db = sum over the batch of dy`.

use crate::error::{shape_err, Result};
use crate::gemm::{par_sgemm, Mat};
use crate::scratch;
use crate::tape::{GradStore, Op, Tape, Values, Var};

pub(crate) struct Saved {
    x: Var,
    w: Var,
    b: Option<Var>,
    relu: bool,
}

fn check(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<(usize, usize, usize)> {
    if x.len() != 2 || w.len() != 2 || x[1] != w[1] {
        return shape_err("linear", "x [N, in] and w [out, in]", (x, w));
    }
    if let Some(b) = b {
        if b != [w[0]] {
            return shape_err("linear", format!("bias [{}]", w[0]), b);
        }
    }
    Ok((x[0], w[1], w[0]))
}

/// Forward kernel: `x [N, in]`, `w [out, in]`, `b [out]` -> `[N, out]`, then ReLU if
/// `relu`.
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
    n: usize,
    fin: usize,
    fout: usize,
) -> Vec<f32> {
    let mut y = scratch::take(n * fout);
    match b {
        Some(b) => y
            .chunks_exact_mut(fout.max(1))
            .for_each(|r| r.copy_from_slice(b)),
        None => y.fill(0.0),
    }
    par_sgemm(
        1.0,
        Mat::rm(x, n, fin),
        Mat::rm(w, fout, fin).t(),
        1.0,
        &mut y,
    );
    if relu {
        y.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    y
}

impl Tape<'_> {
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.linear_act(x, w, b, false)
    }

    /// `x @ w^T + b`, followed by a ReLU when `relu` (fused).
    pub fn linear_act(&mut self, x: Var, w: Var, b: Option<Var>, relu: bool) -> Result<Var> {
        let (n, fin, fout) = check(self.shape(x), self.shape(w), b.map(|b| self.shape(b)))?;
        let y = forward(
            self.value(x),
            self.value(w),
            b.map(|b| self.value(b)),
            relu,
            n,
            fin,
            fout,
        );
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let name = if relu { "linear+relu" } else { "linear" };
        Ok(self.record(name, vec![n, fout], y, &inputs, || {
            Op::Linear(Saved { x, w, b, relu })
        }))
    }
}

pub(crate) fn backward(s: &Saved, out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let (xs, ws) = (v.shape(s.x), v.shape(s.w));
    let (n, fin, fout) = (xs[0], xs[1], ws[0]);
    let masked = s.relu.then(|| {
        let mut m = scratch::take(dy.len());
        for ((d, &gy), &y) in m.iter_mut().zip(dy).zip(v.get(out)) {
            *d = if y > 0.0 { gy } else { 0.0 };
        }
        m
    });
    let dy = masked.as_deref().unwrap_or(dy);
    if v.requires_grad(s.x) {
        par_sgemm(
            1.0,
            Mat::rm(dy, n, fout),
            Mat::rm(v.get(s.w), fout, fin),
            1.0,
            g.acc(s.x),
        );
    }
    if v.requires_grad(s.w) {
        par_sgemm(
            1.0,
            Mat::rm(dy, n, fout).t(),
            Mat::rm(v.get(s.x), n, fin),
            1.0,
            g.acc(s.w),
        );
    }
    if let Some(b) = s.b.filter(|&b| v.requires_grad(b)) {
        let db = g.acc(b);
        for row in dy.chunks(fout) {
            for (d, r) in db.iter_mut().zip(row) {
                *d += r;
            }
        }
    }
    if let Some(m) = masked {
        scratch::give(m);
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, close, rand_tensor};
    use crate::Tape;
    use proptest::prelude::*;

    /// Naive reference: y[i, o] = b[o] + sum_k x[i, k] w[o, k].
    fn naive(x: &[f32], w: &[f32], b: &[f32], n: usize, fin: usize, fout: usize) -> Vec<f32> {
        let mut y = vec![0.0; n * fout];
        for i in 0..n {
            for o in 0..fout {
                let mut s = b[o] as f64;
                for k in 0..fin {
                    s += x[i * fin + k] as f64 * w[o * fin + k] as f64;
                }
                y[i * fout + o] = s as f32;
            }
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_matches_naive(n in 1usize..9, fin in 1usize..70, fout in 1usize..40, seed in 0u64..500) {
            let x = rand_tensor(&[n, fin], seed);
            let w = rand_tensor(&[fout, fin], seed + 1);
            let b = rand_tensor(&[fout], seed + 2);
            let y = super::forward(x.data(), w.data(), Some(b.data()), false, n, fin, fout);
            prop_assert!(close(&y, &naive(x.data(), w.data(), b.data(), n, fin, fout), 1e-5));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let ins = [
            rand_tensor(&[3, 7], 1),
            rand_tensor(&[5, 7], 2),
            rand_tensor(&[5], 3),
        ];
        check_grads(&ins, |t: &mut Tape, v| t.linear(v[0], v[1], Some(v[2])));
    }

    /// The fused ReLU equals linear followed by relu, forward and backward.
    #[test]
    fn fused_relu_equals_linear_then_relu() {
        let run = |fused: bool| {
            let mut t = Tape::new(&[], crate::Mode::InputGrad);
            let x = t.input(rand_tensor(&[5, 9], 1), true);
            let w = t.input(rand_tensor(&[7, 9], 2), true);
            let b = t.input(rand_tensor(&[7], 3), true);
            let y = if fused {
                t.linear_act(x, w, Some(b), true).unwrap()
            } else {
                let l = t.linear(x, w, Some(b)).unwrap();
                t.relu(l).unwrap()
            };
            let dy = rand_tensor(t.shape(y), 4).into_data();
            let g = t.backward_seeded(y, &dy, None).unwrap();
            let all = |v| g.get(v).unwrap().to_vec();
            (t.value(y).to_vec(), all(x), all(w), all(b))
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut t = Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(rand_tensor(&[2, 3], 0), false);
        let w = t.input(rand_tensor(&[4, 5], 0), false);
        assert!(t.linear(x, w, None).is_err());
    }
}
