//! 2-D convolution (PyTorch's cross-correlation, no kernel flip), NCHW input, OIHW
//! weight, symmetric zero padding, equal strides, optionally with a fused ReLU.
//!
//! im2col + GEMM over chunks of the batch. For a chunk of S samples the patch matrix
//! `cols [K, S*P]` (K = C*KH*KW, P = OH*OW) holds, in column `s*P + p`, the input patch
//! under output position p of sample s; `Yt [O, S*P] = W [O, K] @ cols` is one GEMM, and a
//! scatter writes `y[n, o, p] = act(Yt[o, s*P + p] + b[o])` in NCHW. S is chosen so that
//! `cols` is about 1 MB and stays in L2 (whole-batch patch matrices of 16 MB made the
//! im2col and col2im traffic cost as much as the arithmetic); per-sample GEMMs were too
//! small to run fast.
//!
//! Local derivatives, with `dYt` the chunk's output gradient gathered to `[O, S*P]` (and
//! masked by `y > 0` when the ReLU is fused):
//! `dW += dYt @ cols^T`, `db += row sums of dYt`, `dcols = W^T @ dYt`, scattered back onto
//! the input by col2im. The backward recomputes each chunk's patch matrix instead of
//! keeping it from the forward: cheaper than a round trip through memory, and the tape
//! holds no patch matrices at all. In input-gradient mode only `dcols` is computed.
//!
//! Threads: chunks run in parallel. The chunk size depends on the shapes only, each
//! chunk's weight and bias gradients are partial sums added in chunk order, so results
//! are bit-identical for any thread count.

use crate::error::{invalid, shape_err, Result};
use crate::gemm::{sgemm, Mat};
use crate::kernels::direct_conv as direct;
use crate::kernels::Isa;
use crate::scratch;
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

/// Target size of one chunk's patch matrix, in f32 values (1 MB).
const CHUNK_VALUES: usize = 1 << 18;

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
                format!(
                    "a kernel no larger than the padded input ({} x {})",
                    h + 2 * pad,
                    wd + 2 * pad
                ),
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
    /// Rows of the patch matrix: C*KH*KW.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions per channel: OH*OW.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Columns of the patch matrix: N*OH*OW.
    pub fn cols(&self) -> usize {
        self.n * self.p()
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
    /// Input row of output row `oy` under kernel row `ki`, if inside.
    fn input_row(&self, oy: usize, ki: usize) -> Option<usize> {
        (oy * self.stride + ki)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }
}

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
                        *d = if relu { super::relu::relu(v) } else { v };
                    }
                }
            }
            scratch::give(cols);
            scratch::give(yt);
        });
    y
}

/// One chunk's partial (weight, bias) gradients.
type Partial = (Option<Vec<f32>>, Option<Vec<f32>>);

/// The input-gradient slice of each chunk of the batch (`None` for every chunk when no
/// input gradient is wanted).
fn dx_chunks(dx: Option<&mut [f32]>, len: usize, chunks: usize) -> Vec<Option<&mut [f32]>> {
    match dx {
        Some(dx) => dx.chunks_mut(len).map(Some).collect(),
        None => (0..chunks).map(|_| None).collect(),
    }
}

/// Adds the chunks' partial weight and bias gradients in chunk order: a fixed order, so
/// the result does not depend on which thread computed which chunk.
fn add_partials(partials: Vec<Partial>, dw: Option<&mut [f32]>, db: Option<&mut [f32]>) {
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

/// Whether the direct kernels (`kernels::direct_conv`) can serve this geometry: stride 1
/// and a square kernel larger than the padding (so the adjoint is a convolution too), on
/// an x86-64 CPU with AVX2+FMA or AVX-512 (elsewhere im2col + GEMM is faster than the
/// portable twin of the direct kernels).
pub fn direct_applies(g: &Conv2dGeom) -> bool {
    g.stride == 1 && g.kh == g.kw && g.pad < g.kh && Isa::detect() != Isa::PORTABLE
}

/// Which path each pass takes. Measured crossovers (`cargo run --release --example
/// conv_paths`, batch 128, one thread, lenet5 / lenet_adv:4 / vgg16 layer shapes):
/// - forward: direct whenever it applies (1.3x to 3x faster than im2col + GEMM);
/// - input gradient: direct when the adjoint's work on the padded grid is at least half
///   useful, `C*OH*OW / (ceil8(C) * H * (OW + 2*(K-1-pad))) >= 0.5` (lenet_adv:4 conv2,
///   vgg16); otherwise GEMM (lenet5's convs, and any C = 1 layer, lose 3x direct);
/// - weight gradient: direct only for a single block of at most 8 output channels with
///   fewer than 64 taps (lenet_adv:W conv1 for W <= 4), where the GEMM's output is a
///   sliver; GEMM elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paths {
    pub forward_direct: bool,
    pub input_grad_direct: bool,
    pub weight_grad_direct: bool,
}

pub fn paths(g: &Conv2dGeom) -> Paths {
    if !direct_applies(g) {
        return Paths {
            forward_direct: false,
            input_grad_direct: false,
            weight_grad_direct: false,
        };
    }
    let adjoint_wp = g.ow + 2 * (g.kh - 1 - g.pad);
    let useful = (g.c * g.oh * g.ow) as f64 / (g.c.next_multiple_of(8) * g.h * adjoint_wp) as f64;
    Paths {
        forward_direct: true,
        input_grad_direct: useful >= 0.5,
        weight_grad_direct: g.o <= 8 && g.k() < 64,
    }
}

/// Forward kernel: `y [N, O, OH, OW] = act(conv(x, w) + b)`.
pub fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, relu: bool) -> Vec<f32> {
    if paths(g).forward_direct {
        forward_direct(g, x, w, b, relu)
    } else {
        forward_im2col(g, x, w, b, relu)
    }
}

/// Backward kernel: gradients added into the given accumulators. `relu_out` is the
/// forward's output when the ReLU was fused (it masks `dy`).
pub fn backward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    grads: ConvGrads,
) {
    let pt = paths(g);
    let ConvGrads { dx, dw, db } = grads;
    let run = |direct: bool, grads: ConvGrads| {
        if direct {
            backward_direct(g, x, w, dy, relu_out, grads)
        } else {
            backward_im2col(g, x, w, dy, relu_out, grads)
        }
    };
    if pt.input_grad_direct == pt.weight_grad_direct {
        run(pt.input_grad_direct, ConvGrads { dx, dw, db });
    } else {
        if dx.is_some() {
            run(
                pt.input_grad_direct,
                ConvGrads {
                    dx,
                    dw: None,
                    db: None,
                },
            );
        }
        if dw.is_some() || db.is_some() {
            run(pt.weight_grad_direct, ConvGrads { dx: None, dw, db });
        }
    }
}

/// Forward by direct convolution, parallel over samples.
pub fn forward_direct(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let (o, p, xs) = (g.o, g.p(), g.c * g.h * g.w);
    let mut y = scratch::take(g.n * o * p);
    if o * p == 0 || xs == 0 {
        scratch::give(y);
        return forward_im2col(g, x, w, b, relu);
    }
    let grid = direct::Grid::new(g.c, g.h, g.w, g.kh, g.kw, g.pad);
    let wb = direct::block_weights(w, o, g.k());
    let isa = Isa::detect();
    y.par_chunks_mut(o * p).zip(x.par_chunks(xs)).for_each_init(
        || scratch::take(grid.xp_len()),
        |xp, (yn, xn)| {
            grid.pad_into(xn, g.c, xp);
            direct::forward_sample(isa, &grid, xp, &wb, o, b, relu, false, yn);
        },
    );
    y
}

/// Backward by direct convolution: per chunk of samples (the same fixed partition as the
/// im2col path), the input gradient as the adjoint convolution of `dy`, the weight
/// gradient as blocked dot products on the padded-width grid.
pub fn backward_direct(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    grads: ConvGrads,
) {
    let (o, p, xs, k) = (g.o, g.p(), g.c * g.h * g.w, g.k());
    if o * p == 0 || xs == 0 || g.n == 0 {
        return backward_im2col(g, x, w, dy, relu_out, grads);
    }
    let cs = g.chunk();
    let chunks = g.n.div_ceil(cs);
    let (want_w, want_b) = (grads.dw.is_some(), grads.db.is_some());
    let grid = direct::Grid::new(g.c, g.h, g.w, g.kh, g.kw, g.pad);
    let o8 = o.next_multiple_of(8);
    let isa = Isa::detect();
    // The adjoint: dy [O, OH, OW] padded by K-1-pad, weights flipped and transposed.
    let adj = grads.dx.is_some().then(|| {
        let grid = direct::Grid::new(o, g.oh, g.ow, g.kh, g.kw, g.kh - 1 - g.pad);
        let wb = direct::block_weights(&direct::adjoint_weights(g, w), g.c, o * g.kh * g.kw);
        (grid, wb)
    });
    let dx_chunks = dx_chunks(grads.dx, cs * xs, chunks);
    let partials: Vec<Partial> = dx_chunks
        .into_par_iter()
        .enumerate()
        .map(|(ci, dxc)| {
            let n0 = ci * cs;
            let s = cs.min(g.n - n0);
            // The chunk's output gradient, masked by a fused ReLU.
            let mut dym = scratch::take(s * o * p);
            let dyc = &dy[n0 * o * p..(n0 + s) * o * p];
            match relu_out {
                Some(y) => {
                    let yc = &y[n0 * o * p..(n0 + s) * o * p];
                    for ((d, &gy), &yv) in dym.iter_mut().zip(dyc).zip(yc) {
                        *d = if yv > 0.0 { gy } else { 0.0 };
                    }
                }
                None => dym.copy_from_slice(dyc),
            }
            let db = want_b.then(|| {
                let mut db = vec![0.0f32; o];
                for plane in dym.chunks_exact(p).enumerate() {
                    db[plane.0 % o] += plane.1.iter().sum::<f32>();
                }
                db
            });
            let dw = want_w.then(|| {
                let mut xps = scratch::take(s * grid.xp_len());
                let mut dyps = scratch::take(s * o8 * grid.q());
                for si in 0..s {
                    grid.pad_into(
                        &x[(n0 + si) * xs..][..xs],
                        g.c,
                        &mut xps[si * grid.xp_len()..][..grid.xp_len()],
                    );
                    direct::dy_to_grid(
                        &grid,
                        &dym[si * o * p..][..o * p],
                        o,
                        &mut dyps[si * o8 * grid.q()..][..o8 * grid.q()],
                    );
                }
                let mut part = vec![0.0; o * k];
                direct::weight_grad(isa, &grid, &xps, &dyps, o, s, &mut part);
                scratch::give(xps);
                scratch::give(dyps);
                part
            });
            if let (Some(dxc), Some((agrid, awb))) = (dxc, adj.as_ref()) {
                let mut dyp = scratch::take(agrid.xp_len());
                for si in 0..s {
                    agrid.pad_into(&dym[si * o * p..][..o * p], o, &mut dyp);
                    direct::forward_sample(
                        isa,
                        agrid,
                        &dyp,
                        awb,
                        g.c,
                        None,
                        false,
                        true,
                        &mut dxc[si * xs..][..xs],
                    );
                }
                scratch::give(dyp);
            }
            scratch::give(dym);
            (dw, db)
        })
        .collect();
    add_partials(partials, grads.dw, grads.db);
}

pub(crate) struct Saved {
    x: Var,
    w: Var,
    b: Option<Var>,
    geom: Conv2dGeom,
    relu: bool,
}

impl Tape<'_> {
    /// `conv2d(x, w) + b`, stride and zero padding on both axes.
    pub fn conv2d(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.conv2d_act(x, w, b, stride, padding, false)
    }

    /// `conv2d(x, w) + b`, followed by a ReLU when `relu` (fused: no separate pass over
    /// the activations, forward or backward).
    pub fn conv2d_act(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        stride: usize,
        padding: usize,
        relu: bool,
    ) -> Result<Var> {
        let g = Conv2dGeom::new(self.shape(x), self.shape(w), stride, padding)?;
        if let Some(b) = b {
            if self.shape(b) != [g.o] {
                return shape_err("conv2d", format!("bias [{}]", g.o), self.shape(b));
            }
        }
        let y = forward(
            &g,
            self.value(x),
            self.value(w),
            b.map(|b| self.value(b)),
            relu,
        );
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let name = if relu { "conv2d+relu" } else { "conv2d" };
        Ok(self.record(name, g.out_shape(), y, &inputs, || {
            Op::Conv2d(Saved {
                x,
                w,
                b,
                geom: g,
                relu,
            })
        }))
    }
}

pub(crate) fn backward_op(s: &Saved, out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let relu_out = s.relu.then(|| v.get(out));
    let (x, w) = (v.get(s.x), v.get(s.w));
    // The accumulators are borrowed one at a time from the store, so collect the three
    // gradients into owned buffers only where two are needed at once.
    let want = |var: Option<Var>| var.is_some_and(|var| v.requires_grad(var));
    let (want_x, want_w, want_b) = (want(Some(s.x)), want(Some(s.w)), want(s.b));
    let mut dw = want_w.then(|| scratch::zeroed(v.get(s.w).len()));
    let mut db = want_b.then(|| scratch::zeroed(s.geom.o));
    {
        let dx = if want_x { Some(g.acc(s.x)) } else { None };
        backward(
            &s.geom,
            x,
            w,
            dy,
            relu_out,
            ConvGrads {
                dx,
                dw: dw.as_deref_mut(),
                db: db.as_deref_mut(),
            },
        );
    }
    for (var, buf) in [(Some(s.w), dw), (s.b, db)] {
        if let (Some(var), Some(buf)) = (var, buf) {
            g.acc(var).iter_mut().zip(&buf).for_each(|(a, b)| *a += b);
            scratch::give(buf);
        }
    }
}

/// Naive reference kernels: direct loops, f64 accumulation.
#[cfg(test)]
pub(crate) mod naive {
    use super::Conv2dGeom;

    fn input_index(
        g: &Conv2dGeom,
        n: usize,
        c: usize,
        oy: usize,
        ox: usize,
        ki: usize,
        kj: usize,
    ) -> Option<usize> {
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
    pub fn backward(
        g: &Conv2dGeom,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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
    fn fast_matches_naive(
        xs: [usize; 4],
        o: usize,
        k: (usize, usize),
        stride: usize,
        pad: usize,
        relu: bool,
        seed: u64,
    ) -> std::result::Result<(), String> {
        let ws = [o, xs[1], k.0, k.1];
        let g = Conv2dGeom::new(&xs, &ws, stride, pad).map_err(|e| e.to_string())?;
        let (x, w, b) = (
            rand_tensor(&xs, seed),
            rand_tensor(&ws, seed + 1),
            rand_tensor(&[o], seed + 2),
        );
        let mut params = w.data().to_vec();
        params.extend_from_slice(b.data());
        let mut t = Tape::new(&params, Mode::Train);
        let xv = t.input(x.clone(), true);
        let wv = t.param(0, &ws).unwrap();
        let bv = t.param(w.numel(), &[o]).unwrap();
        let y = t.conv2d_act(xv, wv, Some(bv), stride, pad, relu).unwrap();
        let dy = rand_tensor(t.shape(y), seed + 3).into_data();
        let mut pg = vec![0.0; params.len()];
        let grads = t.backward_seeded(y, &dy, Some(&mut pg)).unwrap();
        let mut y_ref = naive::forward(&g, x.data(), w.data(), Some(b.data()));
        // A fused ReLU: clamp the output and mask the output gradient.
        let dy_eff: Vec<f32> = if relu {
            y_ref.iter_mut().for_each(|v| *v = v.max(0.0));
            dy.iter()
                .zip(&y_ref)
                .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
                .collect()
        } else {
            dy.clone()
        };
        let (dx_ref, dw_ref, db_ref) = naive::backward(&g, x.data(), w.data(), &dy_eff);
        let ok = |name: &str, a: &[f32], b: &[f32]| {
            if close(a, b, 1e-5) {
                Ok(())
            } else {
                Err(format!(
                    "{name} differs for x {xs:?} w {ws:?} s {stride} p {pad}"
                ))
            }
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
            kh in 1usize..6, kw in 1usize..6, stride in 1usize..4, pad in 0usize..3, relu: bool, seed in 0u64..1000,
        ) {
            prop_assume!(h + 2 * pad >= kh && w + 2 * pad >= kw);
            fast_matches_naive([n, c, h, w], o, (kh, kw), stride, pad, relu, seed).map_err(TestCaseError::fail)?;
        }
    }

    /// A layer large enough that the batch is split into many chunks (one sample each
    /// here), so the partial weight and bias gradients are reduced across chunks.
    #[test]
    fn many_chunks_with_fused_relu() {
        let g = Conv2dGeom::new(&[5, 8, 30, 30], &[4, 8, 5, 5], 1, 2).unwrap();
        assert_eq!(g.chunk(), 1);
        fast_matches_naive([5, 8, 30, 30], 4, (5, 5), 1, 2, true, 7).unwrap();
        let g = Conv2dGeom::new(&[19, 6, 20, 21], &[8, 6, 3, 3], 1, 1).unwrap();
        assert!(g.chunk() > 1 && g.chunk() < 19);
        fast_matches_naive([19, 6, 20, 21], 8, (3, 3), 1, 1, true, 8).unwrap();
    }

    /// The direct kernels and im2col + GEMM agree on the models' layer shapes (forward,
    /// and every gradient with a fused ReLU).
    #[test]
    fn direct_equals_im2col_on_model_layers() {
        for (xs, ws, pad) in [
            ([9, 1, 28, 28], [20, 1, 5, 5], 0),
            ([5, 20, 12, 12], [50, 20, 5, 5], 0),
            ([9, 1, 28, 28], [8, 1, 5, 5], 2),
            ([7, 8, 14, 14], [16, 8, 5, 5], 2),
            ([3, 4, 8, 8], [12, 4, 3, 3], 1),
        ] {
            let g = Conv2dGeom::new(&xs, &ws, 1, pad).unwrap();
            assert!(direct_applies(&g));
            let (x, w, b) = (
                rand_tensor(&xs, 1),
                rand_tensor(&ws, 2),
                rand_tensor(&[ws[0]], 3),
            );
            let y1 = forward_direct(&g, x.data(), w.data(), Some(b.data()), true);
            let y2 = forward_im2col(&g, x.data(), w.data(), Some(b.data()), true);
            assert!(close(&y1, &y2, 1e-5), "forward {xs:?} {ws:?}");
            let dy = rand_tensor(&g.out_shape(), 4).into_data();
            let run = |direct: bool| {
                let (mut dx, mut dw, mut db) =
                    (vec![0.0; x.numel()], vec![0.0; w.numel()], vec![0.0; ws[0]]);
                let grads = ConvGrads {
                    dx: Some(&mut dx),
                    dw: Some(&mut dw),
                    db: Some(&mut db),
                };
                if direct {
                    backward_direct(&g, x.data(), w.data(), &dy, Some(&y1), grads);
                } else {
                    backward_im2col(&g, x.data(), w.data(), &dy, Some(&y1), grads);
                }
                (dx, dw, db)
            };
            let (a, b2) = (run(true), run(false));
            assert!(
                close(&a.0, &b2.0, 1e-5) && close(&a.1, &b2.1, 1e-5) && close(&a.2, &b2.2, 1e-5),
                "backward {xs:?} {ws:?}"
            );
        }
    }

    #[test]
    fn path_choice_follows_the_measured_crossovers() {
        let p = |xs: [usize; 4], ws: [usize; 4], pad| {
            paths(&Conv2dGeom::new(&xs, &ws, 1, pad).unwrap())
        };
        if Isa::detect() == Isa::PORTABLE {
            return;
        }
        let lenet5_conv2 = p([1, 20, 12, 12], [50, 20, 5, 5], 0);
        assert!(
            lenet5_conv2.forward_direct
                && !lenet5_conv2.input_grad_direct
                && !lenet5_conv2.weight_grad_direct
        );
        let adv_conv1 = p([1, 1, 28, 28], [8, 1, 5, 5], 2);
        assert!(
            adv_conv1.forward_direct
                && !adv_conv1.input_grad_direct
                && adv_conv1.weight_grad_direct
        );
        let adv_conv2 = p([1, 8, 14, 14], [16, 8, 5, 5], 2);
        assert!(adv_conv2.input_grad_direct && !adv_conv2.weight_grad_direct);
        assert!(
            !paths(&Conv2dGeom::new(&[1, 3, 9, 9], &[4, 3, 3, 3], 2, 1).unwrap()).forward_direct
        );
    }

    /// Shrunk proptest failure: on the last output row, a run of the direct kernel's
    /// store that lies entirely in the padding columns started past the end of `y`.
    #[test]
    fn regression_direct_store_in_padding_columns_of_last_row() {
        fast_matches_naive([1, 1, 7, 8], 1, (5, 5), 1, 1, false, 0).unwrap();
    }

    /// ReLU keeps NaN (a diverged run must not turn into zeros).
    #[test]
    fn fused_relu_propagates_nan() {
        let g = Conv2dGeom::new(&[1, 1, 4, 4], &[2, 1, 3, 3], 1, 1).unwrap();
        let mut x = vec![0.5f32; 16];
        x[5] = f32::NAN;
        let w = vec![1.0f32; 18];
        for y in [
            forward_direct(&g, &x, &w, None, true),
            forward_im2col(&g, &x, &w, None, true),
        ] {
            assert!(y.iter().any(|v| v.is_nan()));
        }
    }

    /// Padding larger than the kernel reach: whole rows of a patch are zero.
    #[test]
    fn padding_wider_than_kernel() {
        fast_matches_naive([2, 2, 3, 3], 3, (2, 2), 2, 3, false, 11).unwrap();
    }

    #[test]
    fn gradients_match_finite_differences() {
        let ins = [
            rand_tensor(&[2, 3, 6, 5], 1),
            rand_tensor(&[4, 3, 3, 3], 2),
            rand_tensor(&[4], 3),
        ];
        check_grads(&ins, |t, v| t.conv2d(v[0], v[1], Some(v[2]), 2, 1));
        check_grads(&ins, |t, v| t.conv2d(v[0], v[1], None, 1, 0));
    }

    /// The fused ReLU gives exactly what conv2d followed by relu gives, forward and
    /// backward. (A finite-difference check of the fused op would straddle ReLU kinks.)
    #[test]
    fn fused_relu_equals_conv_then_relu() {
        let run = |fused: bool| {
            let mut t = Tape::new(&[], Mode::InputGrad);
            let x = t.input(rand_tensor(&[3, 2, 7, 6], 1), true);
            let w = t.input(rand_tensor(&[4, 2, 3, 3], 2), true);
            let b = t.input(rand_tensor(&[4], 3), true);
            let y = if fused {
                t.conv2d_act(x, w, Some(b), 1, 1, true).unwrap()
            } else {
                let c = t.conv2d(x, w, Some(b), 1, 1).unwrap();
                t.relu(c).unwrap()
            };
            let dy = rand_tensor(t.shape(y), 4).into_data();
            let g = t.backward_seeded(y, &dy, None).unwrap();
            let all = |v| g.get(v).unwrap().to_vec();
            (t.value(y).to_vec(), all(x), all(w), all(b))
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn bit_identical_across_thread_counts() {
        let run = |threads: usize| {
            crate::threads::pool(threads).unwrap().install(|| {
                // 11 chunks of 2 samples.
                let (xs, ws) = ([21, 8, 24, 24], [6, 8, 5, 5]);
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
