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
    use crate::testing::{check_grads, f32s, grad_of, prop_close, rand_tensor};
    use crate::{Mode, Tape};
    use proptest::prelude::*;

    /// Naive f64 reference: `c[i, j] = sum_p a[i, p] b[p, j]`, and the gradients of
    /// `sum(c * dc)`: `da[i, p] = sum_j dc[i, j] b[p, j]`, `db[p, j] = sum_i a[i, p] dc[i, j]`.
    #[allow(clippy::type_complexity)]
    fn naive(
        a: &[f32],
        b: &[f32],
        dc: &[f32],
        (m, k, n): (usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut c, mut da, mut db) = (vec![0f64; m * n], vec![0f64; m * k], vec![0f64; k * n]);
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let (x, y, g) = (
                        a[i * k + p] as f64,
                        b[p * n + j] as f64,
                        dc[i * n + j] as f64,
                    );
                    c[i * n + j] += x * y;
                    da[i * k + p] += g * y;
                    db[p * n + j] += g * x;
                }
            }
        }
        (c, da, db)
    }

    /// The tape's matmul, forward and both gradients, against [`naive`]. With `twice`,
    /// the output is `a @ b + a @ b` (two matmul nodes): the second backward must add to
    /// the gradients the first left in the accumulators, not overwrite them.
    fn matches_naive(
        (m, k, n): (usize, usize, usize),
        rg: (bool, bool),
        twice: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let (a, b) = (rand_tensor(&[m, k], seed), rand_tensor(&[k, n], seed + 1));
        let dc = rand_tensor(&[m, n], seed + 2).into_data();
        let mut t = Tape::new(&[], Mode::InputGrad);
        let (av, bv) = (t.input(a.clone(), rg.0), t.input(b.clone(), rg.1));
        let mut c = t.matmul(av, bv).unwrap();
        if twice {
            let c2 = t.matmul(av, bv).unwrap();
            c = t.add(c, c2).unwrap();
        }
        prop_assert_eq!(t.shape(c), &[m, n]);
        let grads = t.backward_seeded(c, &dc, None).unwrap();
        let (mut c_ref, mut da_ref, mut db_ref) = naive(a.data(), b.data(), &dc, (m, k, n));
        if twice {
            for v in c_ref.iter_mut().chain(&mut da_ref).chain(&mut db_ref) {
                *v *= 2.0;
            }
        }
        let what = |q: &str| format!("{q}: {m}x{k}x{n} twice {twice} seed {seed}");
        prop_close(&what("c"), t.value(c), &f32s(&c_ref), 1e-5)?;
        for (v, rg, want, name) in [(av, rg.0, &da_ref, "da"), (bv, rg.1, &db_ref, "db")] {
            if rg {
                prop_close(&what(name), &grad_of(&grads, v, name)?, &f32s(want), 1e-4)?;
            } else {
                prop_assert!(
                    grads.get(v).is_none(),
                    "{}: unexpected gradient",
                    what(name)
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_and_backward_match_naive(
            m in 1usize..40, k in 1usize..70, n in 1usize..40,
            rg_a in prop::bool::weighted(0.85), rg_b in prop::bool::weighted(0.85),
            twice: bool, seed in 0u64..1000,
        ) {
            matches_naive((m, k, n), (rg_a, rg_b), twice, seed)?;
        }
    }

    /// Shapes above the parallel threshold, on a 3-thread pool: the forward and both
    /// backward GEMMs (with transposed operands) take the row split and the column split.
    #[test]
    fn large_shapes_on_the_parallel_paths() {
        crate::threads::pool(3).unwrap().install(|| {
            for mkn in [(3, 300, 400), (300, 5, 400), (200, 80, 30)] {
                matches_naive(mkn, (true, true), true, 7).unwrap();
            }
        });
    }

    /// Empty dimensions: an empty inner dimension gives zeros, empty outer ones empty
    /// outputs, and no gradient panics.
    #[test]
    fn empty_dimensions() {
        for mkn in [(2, 0, 3), (0, 3, 2), (2, 3, 0)] {
            matches_naive(mkn, (true, true), false, 1).unwrap();
            matches_naive(mkn, (true, true), true, 1).unwrap();
        }
    }

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
