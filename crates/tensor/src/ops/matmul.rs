//! Matrix product `c = a @ b` of `[m, k]` and `[k, n]`; `da = dc @ b^T`, `db = a^T @ dc`
//! (transposes are stride swaps handed to sgemm, never copies).

use crate::error::{shape_err, Result};
use crate::gemm::{par_sgemm, Mat};
use crate::tape::{GradStore, Op, Tape, Values, Var};

pub(crate) struct Saved {
    a: Var,
    b: Var,
}

/// Forward kernel: row-major `a [m, k]` times `b [k, n]`.
pub fn forward(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    par_sgemm(1.0, Mat::rm(a, m, k), Mat::rm(b, k, n), 0.0, &mut c);
    c
}

impl Tape<'_> {
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.len() != 2 || sb.len() != 2 || sa[1] != sb[0] {
            return shape_err("matmul", "a [m, k] and b [k, n]", (sa, sb));
        }
        let (m, k, n) = (sa[0], sa[1], sb[1]);
        let c = forward(self.value(a), self.value(b), m, k, n);
        Ok(self.record("matmul", vec![m, n], c, &[a, b], || {
            Op::Matmul(Saved { a, b })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dc: &[f32], v: Values, g: &mut GradStore) {
    let (m, k, n) = (v.shape(s.a)[0], v.shape(s.a)[1], v.shape(s.b)[1]);
    if v.requires_grad(s.a) {
        par_sgemm(
            1.0,
            Mat::rm(dc, m, n),
            Mat::rm(v.get(s.b), k, n).t(),
            1.0,
            g.acc(s.a),
        );
    }
    if v.requires_grad(s.b) {
        par_sgemm(
            1.0,
            Mat::rm(v.get(s.a), m, k).t(),
            Mat::rm(dc, m, n),
            1.0,
            g.acc(s.b),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, rand_tensor};

    #[test]
    fn gradients_match_finite_differences() {
        let ins = [rand_tensor(&[4, 6], 1), rand_tensor(&[6, 3], 2)];
        check_grads(&ins, |t, v| t.matmul(v[0], v[1]));
    }

    #[test]
    fn forward_matches_hand_computed() {
        let c = super::forward(
            &[1., 2., 3., 4., 5., 6.],
            &[1., 0., 0., 1., 1., 1.],
            2,
            3,
            2,
        );
        assert_eq!(c, vec![4., 5., 10., 11.]);
    }
}
