//! The im2col + GEMM path: patch matrices of a chunk of samples, one GEMM per chunk and
//! pass (the module docs of `ops::conv2d` give the derivation). It serves every
//! geometry, and is the path the direct kernels are tested against.

use super::{Conv2dGeom, CHUNK_VALUES};
use crate::gemm::{sgemm, Mat};
use crate::scratch;
use rayon::prelude::*;

/// Fills patch row `r = (c, ki, kj)` of sample `n`: `row [P]` from `x_n [C, H, W]`.
fn im2col_row(g: &Conv2dGeom, x: &[f32], r: usize, row: &mut [f32]) {
    let (c, ki, kj) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
    let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
    let (lo, hi) = g.valid_ox(kj);
    for (oy, out) in row.chunks_exact_mut(g.ow).enumerate() {
        let Some(iy) = g.input_row(oy, ki).filter(|_| lo < hi) else {
            out.fill(0.0);
            continue;
        };
        let src = &plane[iy * g.w..(iy + 1) * g.w];
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        let x0 = lo * g.stride + kj - g.pad;
        if g.stride == 1 {
            out[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
        } else {
            for (o, ix) in out[lo..hi].iter_mut().zip((x0..).step_by(g.stride)) {
                *o = src[ix];
            }
        }
    }
}

/// Adjoint of [`im2col_row`]: adds patch row `r` of one sample back onto `dx_n`.
fn col2im_row(g: &Conv2dGeom, row: &[f32], r: usize, dx: &mut [f32]) {
    let (c, ki, kj) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
    let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
    let (lo, hi) = g.valid_ox(kj);
    if lo >= hi {
        return;
    }
    for (oy, src) in row.chunks_exact(g.ow).enumerate() {
        let Some(iy) = g.input_row(oy, ki) else {
            continue;
        };
        let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
        let x0 = lo * g.stride + kj - g.pad;
        if g.stride == 1 {
            for (d, v) in dst[x0..x0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += v;
            }
        } else {
            for (v, ix) in src[lo..hi].iter().zip((x0..).step_by(g.stride)) {
                dst[ix] += v;
            }
        }
    }
}

/// Patch matrix of `S` consecutive samples: `x [S, C, H, W]` -> `cols [K, S*P]`.
pub fn im2col(g: &Conv2dGeom, x: &[f32], samples: usize, cols: &mut [f32]) {
    let (p, xs) = (g.p(), g.c * g.h * g.w);
    if p == 0 {
        return;
    }
    for (r, row) in cols[..g.k() * samples * p]
        .chunks_exact_mut(samples * p)
        .enumerate()
    {
        for (s, seg) in row.chunks_exact_mut(p).enumerate() {
            im2col_row(g, &x[s * xs..(s + 1) * xs], r, seg);
        }
    }
}

/// Adjoint of [`im2col`]: `dx [S, C, H, W] += col2im(dcols [K, S*P])`.
pub fn col2im_add(g: &Conv2dGeom, dcols: &[f32], samples: usize, dx: &mut [f32]) {
    let (p, xs) = (g.p(), g.c * g.h * g.w);
    if p == 0 || xs == 0 {
        return;
    }
    for (s, dxs) in dx.chunks_exact_mut(xs).take(samples).enumerate() {
        for r in 0..g.k() {
            col2im_row(g, &dcols[r * samples * p + s * p..][..p], r, dxs);
        }
    }
}

impl Conv2dGeom {
    /// Samples per chunk: a function of the shapes only (never of the thread count).
    pub fn chunk(&self) -> usize {
        (CHUNK_VALUES / (self.k() * self.p()).max(1)).clamp(1, self.n.max(1))
    }
}

/// Forward by im2col + GEMM: `y [N, O, OH, OW] = act(conv(x, w) + b)`.
pub fn forward_im2col(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let mut y = scratch::take(g.n * o * p);
    if o * p == 0 {
        return y;
    }
    let cs = g.chunk();
    let xs = g.c * g.h * g.w;
    y.par_chunks_mut(cs * o * p)
        .zip(x.par_chunks(cs * xs.max(1)))
        .for_each(|(yc, xc)| {
            let s = yc.len() / (o * p);
            let mut cols = scratch::take(k * s * p);
            let mut yt = scratch::take(o * s * p);
            im2col(g, xc, s, &mut cols);
            sgemm(
                1.0,
                Mat::rm(w, o, k),
                Mat::rm(&cols, k, s * p),
                0.0,
                &mut yt,
                s * p,
            );
            // Scatter [O, S*P] -> [S, O, P] with the bias and the activation fused in.
            for (si, ys) in yc.chunks_exact_mut(o * p).enumerate() {
                for (oc, dst) in ys.chunks_exact_mut(p).enumerate() {
                    let src = &yt[oc * s * p + si * p..][..p];
                    let bias = b.map_or(0.0, |b| b[oc]);
                    for (d, &v) in dst.iter_mut().zip(src) {
                        let v = v + bias;
                        *d = if relu { crate::ops::relu::relu(v) } else { v };
                    }
                }
            }
            scratch::give(cols);
            scratch::give(yt);
        });
    y
}

/// One chunk's partial (weight, bias) gradients.
pub(super) type Partial = (Option<Vec<f32>>, Option<Vec<f32>>);

/// The input-gradient slice of each chunk of the batch (`None` for every chunk when no
/// input gradient is wanted).
pub(super) fn dx_chunks(
    dx: Option<&mut [f32]>,
    len: usize,
    chunks: usize,
) -> Vec<Option<&mut [f32]>> {
    match dx {
        Some(dx) => dx.chunks_mut(len).map(Some).collect(),
        None => (0..chunks).map(|_| None).collect(),
    }
}

/// Adds the chunks' partial weight and bias gradients in chunk order: a fixed order, so
/// the result does not depend on which thread computed which chunk.
pub(super) fn add_partials(partials: Vec<Partial>, dw: Option<&mut [f32]>, db: Option<&mut [f32]>) {
    for (acc, pick) in [(dw, 0), (db, 1)] {
        let Some(acc) = acc else { continue };
        for part in partials.iter().filter_map(|p| {
            if pick == 0 {
                p.0.as_ref()
            } else {
                p.1.as_ref()
            }
        }) {
            acc.iter_mut().zip(part).for_each(|(d, v)| *d += v);
        }
    }
}

/// Which gradients [`backward`] computes, and where it adds them.
pub struct ConvGrads<'a> {
    pub dx: Option<&'a mut [f32]>,
    pub dw: Option<&'a mut [f32]>,
    pub db: Option<&'a mut [f32]>,
}

/// Backward by im2col + GEMM from the output gradient `dy` (and the output `y` when the
/// ReLU is fused, to mask `dy`). Gradients are added into the given accumulators.
pub fn backward_im2col(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    grads: ConvGrads,
) {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let (xs, cs) = (g.c * g.h * g.w, g.chunk());
    if o * p == 0 || g.n == 0 {
        return;
    }
    let chunks = g.n.div_ceil(cs);
    let (want_w, want_b) = (grads.dw.is_some(), grads.db.is_some());
    let dx_chunks = dx_chunks(grads.dx, cs * xs.max(1), chunks);
    let partials: Vec<Partial> = dx_chunks
        .into_par_iter()
        .enumerate()
        .map(|(ci, dxc)| {
            let n0 = ci * cs;
            let s = cs.min(g.n - n0);
            // Gather the chunk's output gradient to [O, S*P], masked by a fused ReLU.
            let mut dyt = scratch::take(o * s * p);
            for (oc, row) in dyt.chunks_exact_mut(s * p).enumerate() {
                for (si, dst) in row.chunks_exact_mut(p).enumerate() {
                    let at = ((n0 + si) * o + oc) * p;
                    match relu_out {
                        Some(y) => {
                            for ((d, &gy), &yv) in
                                dst.iter_mut().zip(&dy[at..at + p]).zip(&y[at..at + p])
                            {
                                *d = if yv > 0.0 { gy } else { 0.0 };
                            }
                        }
                        None => dst.copy_from_slice(&dy[at..at + p]),
                    }
                }
            }
            let db = want_b.then(|| {
                dyt.chunks_exact(s * p)
                    .map(|r| r.iter().sum::<f32>())
                    .collect()
            });
            let dw = want_w.then(|| {
                let mut cols = scratch::take(k * s * p);
                im2col(g, &x[n0 * xs..(n0 + s) * xs], s, &mut cols);
                let mut part = vec![0.0; o * k];
                sgemm(
                    1.0,
                    Mat::rm(&dyt, o, s * p),
                    Mat::rm(&cols, k, s * p).t(),
                    0.0,
                    &mut part,
                    k,
                );
                scratch::give(cols);
                part
            });
            if let Some(dxc) = dxc {
                let mut dcols = scratch::take(k * s * p);
                sgemm(
                    1.0,
                    Mat::rm(w, o, k).t(),
                    Mat::rm(&dyt, o, s * p),
                    0.0,
                    &mut dcols,
                    s * p,
                );
                col2im_add(g, &dcols, s, dxc);
                scratch::give(dcols);
            }
            scratch::give(dyt);
            (dw, db)
        })
        .collect();
    add_partials(partials, grads.dw, grads.db);
}
