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
        y.iter_mut().for_each(|v| *v = super::relu::relu(*v));
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
        for row in dy
            .chunks_exact(fout.max(1))
            .take(if fout == 0 { 0 } else { n })
        {
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

    /// The tape's linear (fused ReLU or not, bias or not) against naive f64 loops,
    /// forward and backward. `as_params` puts w and b in a parameter buffer (Train-mode
    /// tape; the buffer starts non-zero and the gradients must be added to it); otherwise
    /// they are tape inputs. With `twice`, the output is the sum of two identical linear
    /// nodes: the second backward must add to the accumulators, not overwrite them.
    #[allow(clippy::too_many_arguments)]
    fn backward_matches_naive(
        (n, fin, fout): (usize, usize, usize),
        bias: bool,
        relu: bool,
        as_params: bool,
        twice: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        use crate::testing::{f32s, grad_of, prop_close};
        let x = rand_tensor(&[n, fin], seed);
        let w = rand_tensor(&[fout, fin], seed + 1);
        let b = rand_tensor(&[fout], seed + 2);
        let dy = rand_tensor(&[n, fout], seed + 3).into_data();
        let mut params = w.data().to_vec();
        params.extend_from_slice(b.data());
        let mut t = if as_params {
            Tape::new(&params, crate::Mode::Train)
        } else {
            Tape::new(&[], crate::Mode::InputGrad)
        };
        let xv = t.input(x.clone(), true);
        let (wv, bv) = if as_params {
            (
                t.param(0, &[fout, fin]).unwrap(),
                t.param(fout * fin, &[fout]).unwrap(),
            )
        } else {
            (t.input(w.clone(), true), t.input(b.clone(), true))
        };
        let y = t.linear_act(xv, wv, bias.then_some(bv), relu).unwrap();
        prop_assert_eq!(t.shape(y), &[n, fout]);
        let out = if twice {
            let y2 = t.linear_act(xv, wv, bias.then_some(bv), relu).unwrap();
            t.add(y, y2).unwrap()
        } else {
            y
        };
        let pg0 = rand_tensor(&[params.len()], seed + 4).into_data();
        let mut pg = pg0.clone();
        let grads = t
            .backward_seeded(out, &dy, as_params.then_some(&mut pg[..]))
            .unwrap();
        pg.iter_mut().zip(&pg0).for_each(|(g, g0)| *g -= g0);

        // Naive forward: pre[i, o] = b[o] + sum_k x[i, k] w[o, k], then the ReLU.
        let (xd, wd) = (x.data(), w.data());
        let mut pre = vec![0f64; n * fout];
        for i in 0..n {
            for o in 0..fout {
                pre[i * fout + o] = if bias { b.data()[o] as f64 } else { 0.0 }
                    + (0..fin)
                        .map(|k| xd[i * fin + k] as f64 * wd[o * fin + k] as f64)
                        .sum::<f64>();
            }
        }
        let fast = t.value(y);
        // The ReLU passes the gradient where the pre-activation is positive. Within 1e-3
        // of the kink, f32 and f64 may disagree on the sign, so there the reference takes
        // the fast output's decision (y > 0); the value check covers those anyway.
        let pass: Vec<bool> = (0..n * fout)
            .map(|e| {
                !relu
                    || if pre[e].abs() < 1e-3 {
                        fast[e] > 0.0
                    } else {
                        pre[e] > 0.0
                    }
            })
            .collect();
        let y_ref: Vec<f64> = pre
            .iter()
            .map(|&v| if relu { v.max(0.0) } else { v })
            .collect();
        let dy_eff: Vec<f64> = (0..n * fout)
            .map(|e| if pass[e] { dy[e] as f64 } else { 0.0 })
            .collect();
        // Naive backward: dx[i, k] = sum_o dy[i, o] w[o, k], dw[o, k] = sum_i dy[i, o] x[i, k],
        // db[o] = sum_i dy[i, o].
        let (mut dx, mut dw, mut db) = (
            vec![0f64; n * fin],
            vec![0f64; fout * fin],
            vec![0f64; fout],
        );
        let copies = if twice { 2.0 } else { 1.0 };
        for i in 0..n {
            for o in 0..fout {
                let g = copies * dy_eff[i * fout + o];
                db[o] += g;
                for k in 0..fin {
                    dx[i * fin + k] += g * wd[o * fin + k] as f64;
                    dw[o * fin + k] += g * xd[i * fin + k] as f64;
                }
            }
        }
        let what = |q: &str| {
            format!("{q}: n {n} in {fin} out {fout} bias {bias} relu {relu} params {as_params} twice {twice} seed {seed}")
        };
        prop_close(&what("y"), fast, &f32s(&y_ref), 1e-5)?;
        prop_close(&what("dx"), &grad_of(&grads, xv, "dx")?, &f32s(&dx), 1e-4)?;
        let (dw_got, db_got) = if as_params {
            (pg[..fout * fin].to_vec(), Some(pg[fout * fin..].to_vec()))
        } else {
            (
                grad_of(&grads, wv, "dw")?,
                grads.get(bv).map(|g| g.to_vec()),
            )
        };
        prop_close(&what("dw"), &dw_got, &f32s(&dw), 1e-4)?;
        if bias {
            prop_close(&what("db"), &db_got.unwrap_or_default(), &f32s(&db), 1e-4)?;
        } else if as_params {
            prop_assert!(
                db_got.unwrap().iter().all(|&v| v == 0.0),
                "{}",
                what("unused bias got a gradient")
            );
        } else {
            prop_assert!(db_got.is_none(), "{}", what("unused bias got a gradient"));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..9, fin in 1usize..70, fout in 1usize..40,
            bias: bool, relu: bool, as_params: bool, twice: bool, seed in 0u64..500,
        ) {
            backward_matches_naive((n, fin, fout), bias, relu, as_params, twice, seed)?;
        }
    }

    /// Shapes above the parallel GEMM threshold, on a 3-thread pool (row and column
    /// splits, transposed operands in the backward).
    #[test]
    fn large_shapes_on_the_parallel_paths() {
        crate::threads::pool(3).unwrap().install(|| {
            for shape in [(4, 300, 300), (300, 40, 30), (256, 512, 10)] {
                backward_matches_naive(shape, true, true, true, true, 3).unwrap();
                backward_matches_naive(shape, true, false, false, true, 4).unwrap();
            }
        });
    }

    /// Empty batch and empty input features are fine.
    #[test]
    fn empty_batch_or_features() {
        for shape in [(2, 0, 3), (0, 3, 2)] {
            for (bias, relu, as_params) in [(false, false, false), (true, true, true)] {
                backward_matches_naive(shape, bias, relu, as_params, true, 4).unwrap();
            }
        }
    }

    /// Found by the proptest: with zero output features and a bias that needs a
    /// gradient, the backward used to call `dy.chunks(0)` and panic.
    #[test]
    fn regression_zero_outputs_with_bias() {
        backward_matches_naive((2, 3, 0), true, false, false, false, 4).unwrap();
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
