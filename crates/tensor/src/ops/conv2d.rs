//! 2-D convolution (PyTorch's cross-correlation, no kernel flip), NCHW input, OIHW
//! weight, symmetric zero padding, equal strides.
//!
//! im2col + GEMM, parallel over the batch: for sample n, `cols_n [K, P]` holds the input
//! patch of every output position (K = C*KH*KW, P = OH*OW) and `y_n [O, P] = W [O, K] @
//! cols_n + b`. The local derivatives, per sample:
//! `dcols_n = W^T @ dy_n` (scattered back by col2im), `dW += dy_n @ cols_n^T`,
//! `db += row sums of dy_n`.
//!
//! The im2col buffers are kept for the backward only when the weight needs a gradient
//! (Train mode); in input-gradient mode dx needs only W.

use crate::error::{invalid, shape_err, Result};
use crate::gemm::{sgemm, Mat};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

/// Shapes of one convolution, validated once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv2dGeom {
    /// `x [N, C, H, W]`, `w [O, C, KH, KW]`.
    pub fn new(x: &[usize], w: &[usize], stride: usize, pad: usize) -> Result<Conv2dGeom> {
        if x.len() != 4 || w.len() != 4 || x[1] != w[1] {
            return shape_err("conv2d", "x [N, C, H, W] and w [O, C, KH, KW]", (x, w));
        }
        if stride == 0 {
            return invalid("conv2d", "stride must be at least 1");
        }
        let (h, wd, kh, kw) = (x[2], x[3], w[2], w[3]);
        if kh == 0 || kw == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
            return shape_err(
                "conv2d",
                format!("a kernel no larger than the padded input ({} x {})", h + 2 * pad, wd + 2 * pad),
                (kh, kw),
            );
        }
        Ok(Conv2dGeom {
            n: x[0],
            c: x[1],
            h,
            w: wd,
            o: w[0],
            kh,
            kw,
            stride,
            pad,
            oh: (h + 2 * pad - kh) / stride + 1,
            ow: (wd + 2 * pad - kw) / stride + 1,
        })
    }
    /// Rows of a patch matrix: C*KH*KW.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions per channel: OH*OW.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.n, self.o, self.oh, self.ow]
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.n * self.o * self.p() * self.k()
    }
    /// The range of output columns `ox` whose input column `ox*s + kj - pad` is inside.
    fn valid_ox(&self, kj: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = (self.pad.saturating_sub(kj)).div_ceil(s);
        let hi = if self.w - 1 + self.pad >= kj {
            ((self.w - 1 + self.pad - kj) / s + 1).min(self.ow)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Patch matrix of one sample: `x_n [C, H, W]` -> `cols [K, P]`.
pub fn im2col(g: &Conv2dGeom, x: &[f32], cols: &mut [f32]) {
    let (p, s) = (g.p(), g.stride);
    let mut rows = cols.chunks_exact_mut(p);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = rows.next().expect("cols has K rows");
                let (lo, hi) = g.valid_ox(kj);
                for (oy, out) in row.chunks_exact_mut(g.ow).enumerate() {
                    let iy = (oy * s + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize || lo >= hi {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    let x0 = lo * s + kj - g.pad;
                    if s == 1 {
                        out[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                    } else {
                        for (o, ix) in out[lo..hi].iter_mut().zip((x0..).step_by(s)) {
                            *o = src[ix];
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: adds each patch entry back onto the input pixel it came from.
pub fn col2im_add(g: &Conv2dGeom, cols: &[f32], dx: &mut [f32]) {
    let (p, s) = (g.p(), g.stride);
    let mut rows = cols.chunks_exact(p);
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = rows.next().expect("cols has K rows");
                let (lo, hi) = g.valid_ox(kj);
                for (oy, src) in row.chunks_exact(g.ow).enumerate() {
                    let iy = (oy * s + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize || lo >= hi {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let x0 = lo * s + kj - g.pad;
                    for (v, ix) in src[lo..hi].iter().zip((x0..).step_by(s)) {
                        dst[ix] += v;
                    }
                }
            }
        }
    }
}

/// Forward kernel. When `cols` is given (`N * K * P` values) the patch matrices are left
/// there for the weight gradient.
pub fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, cols: Option<&mut [f32]>) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let xs = g.c * g.h * g.w;
    let mut y = vec![0.0; g.n * o * p];
    let sample = |n: usize, yn: &mut [f32], cn: &mut [f32]| {
        im2col(g, &x[n * xs..(n + 1) * xs], cn);
        let beta = match b {
            Some(b) => {
                for (row, &bv) in yn.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
                1.0
            }
            None => 0.0,
        };
        sgemm(1.0, Mat::rm(w, o, k), Mat::rm(cn, k, p), beta, yn, p);
    };
    if o * p == 0 {
        return y;
    }
    match cols {
        Some(cols) => y
            .par_chunks_mut(o * p)
            .zip(cols.par_chunks_mut(k * p))
            .enumerate()
            .for_each(|(n, (yn, cn))| sample(n, yn, cn)),
        None => y
            .par_chunks_mut(o * p)
            .enumerate()
            .for_each_init(|| vec![0.0; k * p], |cn, (n, yn)| sample(n, yn, cn)),
    }
    y
}

/// Input gradient: `dx_n += col2im(W^T @ dy_n)` for every sample.
pub fn backward_input(g: &Conv2dGeom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let xs = g.c * g.h * g.w;
    if xs == 0 || o * p == 0 {
        return;
    }
    dx.par_chunks_mut(xs)
        .zip(dy.par_chunks(o * p))
        .for_each_init(
            || vec![0.0; k * p],
            |dcols, (dxn, dyn_)| {
                sgemm(1.0, Mat::rm(w, o, k).t(), Mat::rm(dyn_, o, p), 0.0, dcols, p);
                col2im_add(g, dcols, dxn);
            },
        );
}

/// Samples per partial weight gradient. Fixed (not derived from the thread count) so
/// the reduction order, and hence the result, is the same for any number of threads.
const DW_CHUNK: usize = 8;

/// Weight gradient `dW += sum_n dy_n @ cols_n^T`, from the saved patch matrices.
pub fn backward_weight(g: &Conv2dGeom, dy: &[f32], cols: &[f32], dw: &mut [f32]) {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let partials: Vec<Vec<f32>> = (0..g.n.div_ceil(DW_CHUNK))
        .into_par_iter()
        .map(|ci| {
            let mut part = vec![0.0; o * k];
            for n in ci * DW_CHUNK..((ci + 1) * DW_CHUNK).min(g.n) {
                let dyn_ = Mat::rm(&dy[n * o * p..(n + 1) * o * p], o, p);
                let cn = Mat::rm(&cols[n * k * p..(n + 1) * k * p], k, p).t();
                sgemm(1.0, dyn_, cn, 1.0, &mut part, k);
            }
            part
        })
        .collect();
    for part in &partials {
        for (d, v) in dw.iter_mut().zip(part) {
            *d += v;
        }
    }
}

/// Bias gradient: sum of dy over the batch and the output positions.
pub fn backward_bias(g: &Conv2dGeom, dy: &[f32], db: &mut [f32]) {
    let p = g.p();
    for (i, plane) in dy.chunks_exact(p.max(1)).enumerate() {
        db[i % g.o] += plane.iter().sum::<f32>();
    }
}

pub(crate) struct Saved {
    x: Var,
    w: Var,
    b: Option<Var>,
    geom: Conv2dGeom,
    cols: Option<Vec<f32>>,
}

impl Tape<'_> {
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>, stride: usize, padding: usize) -> Result<Var> {
        let g = Conv2dGeom::new(self.shape(x), self.shape(w), stride, padding)?;
        if let Some(b) = b {
            if self.shape(b) != [g.o] {
                return shape_err("conv2d", format!("bias [{}]", g.o), self.shape(b));
            }
        }
        let mut cols = self.requires_grad(w).then(|| vec![0.0; g.n * g.k() * g.p()]);
        let y = forward(&g, self.value(x), self.value(w), b.map(|b| self.value(b)), cols.as_deref_mut());
        let mut inputs = vec![x, w];
        inputs.extend(b);
        Ok(self.record(g.out_shape(), y, &inputs, || {
            Op::Conv2d(Saved {
                x,
                w,
                b,
                geom: g,
                cols,
            })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    if v.requires_grad(s.x) {
        backward_input(&s.geom, dy, v.get(s.w), g.acc(s.x));
    }
    if v.requires_grad(s.w) {
        let cols = s.cols.as_deref().expect("cols are saved whenever w requires grad");
        backward_weight(&s.geom, dy, cols, g.acc(s.w));
    }
    if let Some(b) = s.b.filter(|&b| v.requires_grad(b)) {
        backward_bias(&s.geom, dy, g.acc(b));
    }
}

/// Naive reference kernels: direct loops, f64 accumulation.
#[cfg(test)]
pub(crate) mod naive {
    use super::Conv2dGeom;

    fn input_index(g: &Conv2dGeom, n: usize, c: usize, oy: usize, ox: usize, ki: usize, kj: usize) -> Option<usize> {
        let iy = (oy * g.stride + ki) as isize - g.pad as isize;
        let ix = (ox * g.stride + kj) as isize - g.pad as isize;
        (iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w)
            .then(|| ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize)
    }

    /// Calls `f(y_index, x_index, w_index)` for every multiply-add of the convolution.
    fn each_mac(g: &Conv2dGeom, mut f: impl FnMut(usize, usize, usize)) {
        for n in 0..g.n {
            for o in 0..g.o {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let yi = ((n * g.o + o) * g.oh + oy) * g.ow + ox;
                        for c in 0..g.c {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    if let Some(xi) = input_index(g, n, c, oy, ox, ki, kj) {
                                        f(yi, xi, ((o * g.c + c) * g.kh + ki) * g.kw + kj);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let mut y = vec![0f64; g.n * g.o * g.p()];
        each_mac(g, |yi, xi, wi| y[yi] += x[xi] as f64 * w[wi] as f64);
        let p = g.p();
        y.iter()
            .enumerate()
            .map(|(i, &v)| (v + b.map_or(0.0, |b| b[(i / p) % g.o] as f64)) as f32)
            .collect()
    }

    /// (dx, dw, db) of `sum(y * dy)`.
    pub fn backward(g: &Conv2dGeom, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        each_mac(g, |yi, xi, wi| {
            dx[xi] += dy[yi] as f64 * w[wi] as f64;
            dw[wi] += dy[yi] as f64 * x[xi] as f64;
        });
        let mut db = vec![0f64; g.o];
        for (i, &d) in dy.iter().enumerate() {
            db[(i / g.p()) % g.o] += d as f64;
        }
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        (f(dx), f(dw), f(db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grads, close, rand_tensor};
    use crate::{Mode, Tape};
    use proptest::prelude::*;

    /// Runs the fast forward and backward (Train mode, all gradients) and compares them
    /// with the naive loops.
    fn fast_matches_naive(xs: [usize; 4], o: usize, k: (usize, usize), stride: usize, pad: usize, seed: u64) -> std::result::Result<(), String> {
        let ws = [o, xs[1], k.0, k.1];
        let g = Conv2dGeom::new(&xs, &ws, stride, pad).map_err(|e| e.to_string())?;
        let (x, w, b) = (rand_tensor(&xs, seed), rand_tensor(&ws, seed + 1), rand_tensor(&[o], seed + 2));
        let mut params = w.data().to_vec();
        params.extend_from_slice(b.data());
        let mut t = Tape::new(&params, Mode::Train);
        let xv = t.input(x.clone(), true);
        let wv = t.param(0, &ws).unwrap();
        let bv = t.param(w.numel(), &[o]).unwrap();
        let y = t.conv2d(xv, wv, Some(bv), stride, pad).unwrap();
        let dy = rand_tensor(t.shape(y), seed + 3).into_data();
        let mut pg = vec![0.0; params.len()];
        let grads = t.backward_seeded(y, &dy, Some(&mut pg)).unwrap();
        let y_ref = naive::forward(&g, x.data(), w.data(), Some(b.data()));
        let (dx_ref, dw_ref, db_ref) = naive::backward(&g, x.data(), w.data(), &dy);
        let ok = |name: &str, a: &[f32], b: &[f32]| {
            if close(a, b, 1e-5) { Ok(()) } else { Err(format!("{name} differs for x {xs:?} w {ws:?} s {stride} p {pad}")) }
        };
        ok("y", t.value(y), &y_ref)?;
        ok("dx", grads.get(xv).unwrap(), &dx_ref)?;
        ok("dw", &pg[..w.numel()], &dw_ref)?;
        ok("db", &pg[w.numel()..], &db_ref)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..4, c in 1usize..5, h in 1usize..12, w in 1usize..12, o in 1usize..6,
            kh in 1usize..6, kw in 1usize..6, stride in 1usize..4, pad in 0usize..3, seed in 0u64..1000,
        ) {
            prop_assume!(h + 2 * pad >= kh && w + 2 * pad >= kw);
            fast_matches_naive([n, c, h, w], o, (kh, kw), stride, pad, seed).map_err(TestCaseError::fail)?;
        }
    }

    /// Larger than DW_CHUNK samples, so the partial weight gradients are reduced.
    #[test]
    fn batch_larger_than_weight_chunk() {
        fast_matches_naive([19, 3, 9, 8], 4, (3, 3), 1, 1, 7).unwrap();
    }

    /// Padding larger than the kernel reach: whole rows of a patch are zero.
    #[test]
    fn padding_wider_than_kernel() {
        fast_matches_naive([2, 2, 3, 3], 3, (2, 2), 2, 3, 11).unwrap();
    }

    #[test]
    fn gradients_match_finite_differences() {
        let ins = [rand_tensor(&[2, 3, 6, 5], 1), rand_tensor(&[4, 3, 3, 3], 2), rand_tensor(&[4], 3)];
        check_grads(&ins, |t, v| t.conv2d(v[0], v[1], Some(v[2]), 2, 1));
        check_grads(&ins, |t, v| t.conv2d(v[0], v[1], None, 1, 0));
    }

    #[test]
    fn bit_identical_across_thread_counts() {
        let run = |threads: usize| {
            crate::threads::pool(threads).unwrap().install(|| {
                let (xs, ws) = ([21, 4, 10, 10], [6, 4, 5, 5]);
                let params = rand_tensor(&ws, 1).into_data();
                let mut t = Tape::new(&params, Mode::Train);
                let x = t.input(rand_tensor(&xs, 2), true);
                let w = t.param(0, &ws).unwrap();
                let y = t.conv2d(x, w, None, 1, 2).unwrap();
                let dy = rand_tensor(t.shape(y), 3).into_data();
                let mut pg = vec![0.0; params.len()];
                let grads = t.backward_seeded(y, &dy, Some(&mut pg)).unwrap();
                (t.value(y).to_vec(), grads.get(x).unwrap().to_vec(), pg)
            })
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Conv2dGeom::new(&[1, 3, 5, 5], &[2, 4, 3, 3], 1, 0).is_err());
        assert!(Conv2dGeom::new(&[1, 3, 5, 5], &[2, 3, 3, 3], 0, 0).is_err());
        assert!(Conv2dGeom::new(&[1, 3, 2, 2], &[2, 3, 5, 5], 1, 1).is_err());
        assert!(Conv2dGeom::new(&[1, 3, 5], &[2, 3, 3, 3], 1, 0).is_err());
    }
}
