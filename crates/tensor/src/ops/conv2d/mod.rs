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

//!
//! Files: this one holds the geometry, the choice of path and the tape op;
//! `im2col.rs` the im2col + GEMM path, `direct.rs` the direct path, `naive.rs` the
//! naive reference loops the tests compare both with, `tests.rs` the tests.

use crate::error::{invalid, shape_err, Result};
use crate::kernels::Isa;
use crate::scratch;
use crate::tape::{GradStore, Op, Tape, Values, Var};

mod direct;
mod im2col;
#[cfg(test)]
pub(crate) mod naive;
#[cfg(test)]
mod tests;

pub use direct::{backward_direct, forward_direct};
pub use im2col::{backward_im2col, col2im_add, forward_im2col, im2col, ConvGrads};

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
