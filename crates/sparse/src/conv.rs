//! Direct sparse convolution, no im2col.
//!
//! Each sample is copied into a zero-padded buffer `xp [C, HP, WP]`. For stride 1 the
//! output positions are taken on the padded-width grid, as in the engine's dense direct
//! kernel (`rcc_tensor::kernels::direct_conv`): position `q = oy*WP + ox`, columns
//! `ox >= OW` computed and discarded. On that grid a weight at tap `(c, ki, kj)` reads the
//! input at `q + off`, `off = c*HP*WP + ki*WP + kj`, so consecutive outputs read
//! consecutive inputs. Per output channel and block of B positions (B values held in
//! registers), the kernel streams the channel's non-zeros with their precomputed offsets:
//! `acc[l] += w * xp[q0 + off + l]`, one broadcast and B/16 (AVX-512) loads per non-zero,
//! then stores the block's real positions with the bias and ReLU fused (XNNPACK's f32-spmm
//! idea, with output positions in place of its batch dimension).
//!
//! The kernel body is plain Rust, instantiated per instruction set under
//! `#[target_feature]` (B = 64 for AVX-512, 32 for AVX2+FMA, 16 portable) and chosen at
//! run time, so the library stays built for baseline x86-64.
//!
//! Other strides use a simple direct loop over the same padded buffer (correct, not fast).

use crate::csr::Csr;
use crate::error::{shape, Result};
use crate::linear::relu;
use crate::pool::{max_pool_plane, Pool};
use rcc_tensor::kernels::{Isa, IsaKind};
use rcc_tensor::ops::conv2d::Conv2dGeom;

/// Block sizes (grid positions held in registers per output channel): 4, 2 or 1
/// AVX-512 registers. Small outputs take small blocks so that rounding the grid up to a
/// whole block wastes little (vgg16's 2x2 planes on a 4-wide grid are 8 positions).
const BLOCKS: [usize; 3] = [64, 32, 16];

/// The largest block that wastes at most 1/8 of the rounded grid, else the smallest.
fn block_for(positions: usize) -> usize {
    BLOCKS
        .into_iter()
        .find(|&b| 8 * (positions.next_multiple_of(b) - positions) <= positions)
        .unwrap_or(16)
}

/// A convolution layer with CSR weights `[O, C*KH*KW]` (row = output channel).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseConv {
    pub w: Csr,
    pub bias: Vec<f32>,
    pub relu: bool,
    /// Input `[C, H, W]`, kernel, stride, padding, output size.
    pub c: usize,
    pub h: usize,
    pub wd: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
    hp: usize,
    wp: usize,
    /// Grid positions (OH*WP rounded up to `block`); stride 1 only.
    q: usize,
    /// Positions per register block (one of `BLOCKS`).
    block: usize,
    /// Length of the padded input buffer, with slack for the last block's reads.
    xp_len: usize,
    /// Input offset of each stored weight: `c*HP*WP + ki*WP + kj`.
    offs: Vec<u32>,
    pub(crate) isa: Isa,
}

/// What happens to a channel's accumulated grid: cropped to the output plane, or max
/// pooled first (bias and ReLU applied after the max, which commutes with both).
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    Crop,
    MaxPool(&'a Pool),
}

impl SparseConv {
    /// From dense weights `[O, C, KH, KW]` for inputs `[C, H, W]`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_dense(
        w: &[f32],
        wshape: [usize; 4],
        input: [usize; 3],
        bias: Option<&[f32]>,
        stride: usize,
        pad: usize,
        relu: bool,
    ) -> Result<SparseConv> {
        let [o, c, kh, kw] = wshape;
        if input[0] != c {
            return shape("sparse conv input channels", c, input[0]);
        }
        let wcsr = Csr::from_dense(w, o, c * kh * kw)?;
        let bias = match bias {
            Some(b) => b.to_vec(),
            None => vec![0.0; o],
        };
        SparseConv::new(wcsr, input, kh, kw, stride, pad, bias, relu)
    }

    /// From CSR weights `[O, C*KH*KW]` for inputs `[C, H, W]`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: Csr,
        input: [usize; 3],
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        bias: Vec<f32>,
        relu: bool,
    ) -> Result<SparseConv> {
        let [c, h, wd] = input;
        let o = w.rows();
        if c * kh * kw != w.cols() {
            return shape(
                "sparse conv weight columns (C*KH*KW)",
                c * kh * kw,
                w.cols(),
            );
        }
        if bias.len() != o {
            return shape("conv bias", o, bias.len());
        }
        let g = Conv2dGeom::new(&[1, c, h, wd], &[o, c, kh, kw], stride, pad).map_err(|e| {
            crate::Error::Shape {
                what: "sparse conv".into(),
                expected: "a valid convolution".into(),
                got: e.to_string(),
            }
        })?;
        let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
        let block = block_for(g.oh * wp);
        let q = (g.oh * wp).next_multiple_of(block);
        let max_off = (c.max(1) - 1) * hp * wp + (kh - 1) * wp + kw - 1;
        let xp_len = if stride == 1 {
            (c * hp * wp).max(max_off + q)
        } else {
            c * hp * wp
        };
        if xp_len > u32::MAX as usize {
            return Err(crate::Error::TooLarge {
                what: "a padded input",
                len: xp_len,
            });
        }
        let offs = w
            .col_idx()
            .to_usize()
            .into_iter()
            .map(|t| {
                let (ci, ki, kj) = (t / (kh * kw), (t / kw) % kh, t % kw);
                (ci * hp * wp + ki * wp + kj) as u32
            })
            .collect();
        Ok(SparseConv {
            w,
            bias,
            relu,
            c,
            h,
            wd,
            kh,
            kw,
            stride,
            pad,
            oh: g.oh,
            ow: g.ow,
            hp,
            wp,
            q,
            block,
            xp_len,
            offs,
            isa: Isa::detect(),
        })
    }

    pub fn out_channels(&self) -> usize {
        self.w.rows()
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.wd
    }
    pub fn out_len(&self) -> usize {
        self.out_channels() * self.oh * self.ow
    }
    /// Length of the padded-input scratch buffer `forward` needs.
    pub fn xp_len(&self) -> usize {
        self.xp_len
    }
    /// Length of the one-channel grid scratch `forward` needs.
    pub fn grid_len(&self) -> usize {
        self.q
    }
    /// Useful multiply-adds per sample (non-zeros times output positions).
    pub fn macs(&self) -> usize {
        self.w.nnz() * self.oh * self.ow
    }

    /// Zero-padded copy of one sample `x [C, H, W]` into `xp`.
    fn pad_into(&self, x: &[f32], xp: &mut [f32]) {
        let (h, w, p) = (self.h, self.wd, self.pad);
        if p == 0 {
            xp[..x.len()].copy_from_slice(x);
            xp[x.len()..].fill(0.0);
            return;
        }
        xp.fill(0.0);
        for ci in 0..self.c {
            for iy in 0..h {
                let dst = (ci * self.hp + iy + p) * self.wp + p;
                xp[dst..dst + w].copy_from_slice(&x[(ci * h + iy) * w..][..w]);
            }
        }
    }

    fn check(&self, x: &[f32], xp: &[f32], g: &[f32], y: &[f32], ol: usize) {
        let il = self.in_len();
        let n = x.len().checked_div(il).unwrap_or(0);
        assert!(
            x.len() == n * il && y.len() == n * ol && xp.len() >= self.xp_len && g.len() >= self.q,
            "sparse conv: x has {} values, y {}, xp {}, grid {} (sample in {il}, out {ol}, xp {}, grid {})",
            x.len(),
            y.len(),
            xp.len(),
            g.len(),
            self.xp_len,
            self.q,
        );
    }

    /// `x [N, C, H, W]` -> `y [N, O, OH, OW]`; scratch `xp` of at least
    /// [`SparseConv::xp_len`] values and `g` of at least [`SparseConv::grid_len`].
    pub fn forward(&self, x: &[f32], xp: &mut [f32], g: &mut [f32], y: &mut [f32]) {
        self.forward_isa(self.isa, x, xp, g, Epilogue::Crop, y)
    }

    /// The convolution followed by max pooling `pool` (whose input is this layer's
    /// output): `y [N, O, PH, PW]`, without writing the unpooled output. Stride 1 only.
    pub fn forward_max_pool(
        &self,
        pool: &Pool,
        x: &[f32],
        xp: &mut [f32],
        g: &mut [f32],
        y: &mut [f32],
    ) {
        assert!(
            self.stride == 1 && (pool.c, pool.h, pool.w) == (self.out_channels(), self.oh, self.ow),
            "sparse conv: pooling {pool:?} does not fit the output"
        );
        self.forward_isa(self.isa, x, xp, g, Epilogue::MaxPool(pool), y)
    }

    fn forward_isa(
        &self,
        isa: Isa,
        x: &[f32],
        xp: &mut [f32],
        g: &mut [f32],
        ep: Epilogue,
        y: &mut [f32],
    ) {
        let ol = match ep {
            Epilogue::Crop => self.out_len(),
            Epilogue::MaxPool(p) => p.out_len(),
        };
        self.check(x, xp, g, y, ol);
        let xp = &mut xp[..self.xp_len];
        let g = &mut g[..self.q];
        for (xs, ys) in x.chunks_exact(self.in_len()).zip(y.chunks_exact_mut(ol)) {
            self.pad_into(xs, xp);
            if self.stride != 1 {
                self.sample_strided(xp, ys);
                continue;
            }
            match isa.kind() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Isa` exists only for an instruction set this CPU has
                // (`Isa::detect`, `Isa::supported`); the body itself is safe code.
                IsaKind::Avx512 => unsafe { self.sample_avx512(xp, g, ep, ys) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                IsaKind::Avx2Fma => unsafe { self.sample_avx2(xp, g, ep, ys) },
                _ => self.sample_grid::<16, false>(xp, g, ep, ys),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn sample_avx512(&self, xp: &[f32], g: &mut [f32], ep: Epilogue, y: &mut [f32]) {
        match self.block {
            64 => self.sample_grid::<64, true>(xp, g, ep, y),
            32 => self.sample_grid::<32, true>(xp, g, ep, y),
            _ => self.sample_grid::<16, true>(xp, g, ep, y),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sample_avx2(&self, xp: &[f32], g: &mut [f32], ep: Epilogue, y: &mut [f32]) {
        match self.block {
            64 => self.sample_grid::<64, true>(xp, g, ep, y),
            32 => self.sample_grid::<32, true>(xp, g, ep, y),
            _ => self.sample_grid::<16, true>(xp, g, ep, y),
        }
    }

    /// Stride 1, one sample. Per output channel: the channel's grid in blocks of B
    /// positions (B accumulators in registers, one broadcast weight and B/16 loads per
    /// non-zero), stored to the scratch `g`, then cropped or pooled into `y` with the bias
    /// and ReLU fused. `xp.len() == xp_len` covers `q0 + off + B` for every block and tap.
    #[inline(always)]
    fn sample_grid<const B: usize, const FMA: bool>(
        &self,
        xp: &[f32],
        g: &mut [f32],
        ep: Epilogue,
        y: &mut [f32],
    ) {
        let (oh, ow, wp) = (self.oh, self.ow, self.wp);
        let plane = match ep {
            Epilogue::Crop => oh * ow,
            Epilogue::MaxPool(p) => p.oh * p.ow,
        };
        let vals = self.w.values();
        for (o, (yo, &b)) in y.chunks_exact_mut(plane).zip(&self.bias).enumerate() {
            let act = |v: f32| if self.relu { relu(v + b) } else { v + b };
            let range = self.w.row_range(o);
            if range.is_empty() {
                // A pruned-away channel: its output is the constant act(b).
                yo.fill(act(0.0));
                continue;
            }
            let (offs, vals) = (&self.offs[range.clone()], &vals[range]);
            for q0 in (0..self.q).step_by(B) {
                let xq = &xp[q0..];
                let mut acc = [0f32; B];
                for (&off, &wv) in offs.iter().zip(vals) {
                    let xs: &[f32; B] = xq[off as usize..][..B].try_into().unwrap();
                    for l in 0..B {
                        acc[l] = if FMA {
                            wv.mul_add(xs[l], acc[l])
                        } else {
                            acc[l] + wv * xs[l]
                        };
                    }
                }
                g[q0..q0 + B].copy_from_slice(&acc);
            }
            match ep {
                Epilogue::Crop => {
                    for (oy, row) in yo.chunks_exact_mut(ow).enumerate() {
                        row.iter_mut()
                            .zip(&g[oy * wp..][..ow])
                            .for_each(|(d, &s)| *d = act(s));
                    }
                }
                Epilogue::MaxPool(p) => max_pool_plane(g, wp, p, yo, act),
            }
        }
    }

    /// Any stride, one sample: a direct loop per non-zero over the output positions.
    fn sample_strided(&self, xp: &[f32], y: &mut [f32]) {
        let (oh, ow, s, wp) = (self.oh, self.ow, self.stride, self.wp);
        let p = oh * ow;
        let vals = self.w.values();
        for (o, (yo, &b)) in y.chunks_exact_mut(p).zip(&self.bias).enumerate() {
            yo.fill(0.0);
            let range = self.w.row_range(o);
            for (&off, &wv) in self.offs[range.clone()].iter().zip(&vals[range]) {
                for (oy, row) in yo.chunks_exact_mut(ow).enumerate() {
                    let base = off as usize + oy * s * wp;
                    let src = &xp[base..base + (ow - 1) * s + 1];
                    for (d, &xv) in row.iter_mut().zip(src.iter().step_by(s)) {
                        *d += wv * xv;
                    }
                }
            }
            for d in yo.iter_mut() {
                let v = *d + b;
                *d = if self.relu { relu(v) } else { v };
            }
        }
    }

    /// The input gradient of one sample: `dx [C, H, W] += conv^T(dy)`, where `dy
    /// [O, OH, OW]` is the gradient of the layer's pre-activation (the caller applied the
    /// ReLU mask). Scratch: `dxp` of `xp_len`, `g` of `grid_len`. The transposed kernel
    /// scatters each non-zero's contribution: `dxp[q*S + off] += w * dy[q]`, vectorised
    /// over output positions (stride 1: one `axpy` per non-zero on the grid).
    pub fn input_grad(&self, dy: &[f32], dxp: &mut [f32], g: &mut [f32], dx: &mut [f32]) {
        let taps = |o: usize| {
            let r = self.w.row_range(o);
            self.offs[r.clone()]
                .iter()
                .copied()
                .zip(self.w.values()[r].iter().copied())
        };
        conv_input_grad(self.geometry(), taps, dy, dxp, g, dx)
    }

    pub(crate) fn geometry(&self) -> GridGeom {
        GridGeom {
            o: self.out_channels(),
            c: self.c,
            h: self.h,
            wd: self.wd,
            pad: self.pad,
            stride: self.stride,
            hp: self.hp,
            wp: self.wp,
            oh: self.oh,
            ow: self.ow,
            q: self.q,
            xp_len: self.xp_len,
        }
    }
}

/// The padded-grid geometry shared by the sparse and dense input-gradient kernels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GridGeom {
    pub o: usize,
    pub c: usize,
    pub h: usize,
    pub wd: usize,
    pub pad: usize,
    pub stride: usize,
    pub hp: usize,
    pub wp: usize,
    pub oh: usize,
    pub ow: usize,
    pub q: usize,
    pub xp_len: usize,
}

/// `dx += conv^T(dy)` for one sample, with the taps (input offset on the padded input,
/// weight) of each output channel given by `taps(o)`.
pub(crate) fn conv_input_grad<I: Iterator<Item = (u32, f32)>>(
    gm: GridGeom,
    taps: impl Fn(usize) -> I,
    dy: &[f32],
    dxp: &mut [f32],
    g: &mut [f32],
    dx: &mut [f32],
) {
    let (p, s) = (gm.oh * gm.ow, gm.stride);
    assert!(
        dy.len() == gm.o * p
            && dx.len() == gm.c * gm.h * gm.wd
            && dxp.len() >= gm.xp_len
            && g.len() >= gm.q,
        "sparse conv input gradient: buffer lengths"
    );
    let dxp = &mut dxp[..gm.xp_len];
    dxp.fill(0.0);
    for (o, d) in dy.chunks_exact(p).enumerate() {
        if s == 1 {
            // dy on the grid, zero in the discarded columns.
            let g = &mut g[..gm.q];
            g.fill(0.0);
            for (oy, row) in d.chunks_exact(gm.ow).enumerate() {
                g[oy * gm.wp..][..gm.ow].copy_from_slice(row);
            }
            for (off, w) in taps(o) {
                let dst = &mut dxp[off as usize..][..gm.q];
                dst.iter_mut().zip(g.iter()).for_each(|(a, &v)| *a += w * v);
            }
        } else {
            for (off, w) in taps(o) {
                for (oy, row) in d.chunks_exact(gm.ow).enumerate() {
                    let base = off as usize + oy * s * gm.wp;
                    for (ox, &v) in row.iter().enumerate() {
                        dxp[base + ox * s] += w * v;
                    }
                }
            }
        }
    }
    for ci in 0..gm.c {
        for iy in 0..gm.h {
            let src = &dxp[(ci * gm.hp + iy + gm.pad) * gm.wp + gm.pad..][..gm.wd];
            dx[(ci * gm.h + iy) * gm.wd..][..gm.wd]
                .iter_mut()
                .zip(src)
                .for_each(|(a, &v)| *a += v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::tests::{close, sparse_vec};
    use proptest::prelude::*;

    /// Instruction sets this CPU runs.
    fn isas() -> Vec<Isa> {
        Isa::supported()
    }

    /// Naive dense reference, f64 accumulation.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        n: usize,
        [c, h, wd]: [usize; 3],
        w: &[f32],
        [o, _, kh, kw]: [usize; 4],
        b: Option<&[f32]>,
        s: usize,
        pad: usize,
        relu_: bool,
    ) -> Vec<f32> {
        let (oh, ow) = ((h + 2 * pad - kh) / s + 1, (wd + 2 * pad - kw) / s + 1);
        let mut y = vec![];
        for ni in 0..n {
            for oc in 0..o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[oc] as f64);
                        for ci in 0..c {
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let iy = (oy * s + ki) as isize - pad as isize;
                                    let ix = (ox * s + kj) as isize - pad as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                        continue;
                                    }
                                    let xi = ((ni * c + ci) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((oc * c + ci) * kh + ki) * kw + kj;
                                    acc += x[xi] as f64 * w[wi] as f64;
                                }
                            }
                        }
                        let v = acc as f32;
                        y.push(if relu_ { relu(v) } else { v });
                    }
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        n: usize,
        input: [usize; 3],
        o: usize,
        (kh, kw): (usize, usize),
        stride: usize,
        pad: usize,
        sparsity: f64,
        bias: bool,
        relu_: bool,
        seed: u64,
    ) -> std::result::Result<(), String> {
        let ws = [o, input[0], kh, kw];
        let w = sparse_vec(ws.iter().product(), sparsity, seed);
        let x = sparse_vec(n * input.iter().product::<usize>(), 0.0, seed + 1);
        let b = sparse_vec(o, 0.0, seed + 2);
        let b = bias.then_some(&b[..]);
        let conv = SparseConv::from_dense(&w, ws, input, b, stride, pad, relu_)
            .map_err(|e| e.to_string())?;
        let want = naive(&x, n, input, &w, ws, b, stride, pad, relu_);
        let g = Conv2dGeom::new(&[n, input[0], input[1], input[2]], &ws, stride, pad).unwrap();
        let engine = rcc_tensor::ops::conv2d::forward(&g, &x, &w, b, relu_);
        let what = format!("x {input:?} w {ws:?} s {stride} p {pad} sp {sparsity}");
        for isa in isas() {
            let mut xp = vec![f32::NAN; conv.xp_len()];
            let mut g = vec![f32::NAN; conv.grid_len()];
            let mut y = vec![f32::NAN; n * conv.out_len()];
            conv.forward_isa(isa, &x, &mut xp, &mut g, Epilogue::Crop, &mut y);
            if !close(&y, &want, 1e-5) {
                return Err(format!("{isa:?} differs from naive: {what}"));
            }
            if !close(&y, &engine, 1e-5) {
                return Err(format!("{isa:?} differs from the engine: {what}"));
            }
            // Fused 2x2 (and 3x3 stride 2) max pooling against pooling the engine's output.
            for (k, ps) in [(2, 2), (3, 2)] {
                if stride != 1 || conv.oh < k || conv.ow < k {
                    continue;
                }
                let pool = Pool::new([o, conv.oh, conv.ow], k, ps);
                let mut want_p = vec![0.0; n * pool.out_len()];
                for (e, wp) in engine
                    .chunks(conv.out_len())
                    .zip(want_p.chunks_mut(pool.out_len()))
                {
                    crate::pool::max_pool(&pool, e, wp);
                }
                let mut yp = vec![f32::NAN; n * pool.out_len()];
                conv.forward_isa(isa, &x, &mut xp, &mut g, Epilogue::MaxPool(&pool), &mut yp);
                if !close(&yp, &want_p, 1e-5) {
                    return Err(format!("{isa:?} fused pool {k}/{ps} differs: {what}"));
                }
            }
        }
        // The input gradient against the engine's (of the pre-activation, per sample).
        let dy = sparse_vec(n * conv.out_len(), 0.0, seed + 3);
        let mut want_dx = vec![0.0; x.len()];
        rcc_tensor::ops::conv2d::backward(
            &g,
            &x,
            &w,
            &dy,
            None,
            rcc_tensor::ops::conv2d::ConvGrads {
                dx: Some(&mut want_dx),
                dw: None,
                db: None,
            },
        );
        let mut dxp = vec![f32::NAN; conv.xp_len()];
        let mut gs = vec![f32::NAN; conv.grid_len()];
        let mut dx = vec![0.0; x.len()];
        for ((d, xs), _) in dy
            .chunks(conv.out_len())
            .zip(dx.chunks_mut(conv.in_len()))
            .zip(0..n)
        {
            conv.input_grad(d, &mut dxp, &mut gs, xs);
        }
        if !close(&dx, &want_dx, 1e-5) {
            return Err(format!("input gradient differs from the engine: {what}"));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn matches_dense(
            n in 1usize..3, c in 1usize..6, h in 1usize..14, w in 1usize..14, o in 1usize..7,
            kh in 1usize..6, kw in 1usize..6, stride in 1usize..4, pad in 0usize..3,
            sparsity in 0.0f64..0.99, bias: bool, relu_: bool, seed in 0u64..10_000,
        ) {
            prop_assume!(h + 2 * pad >= kh && w + 2 * pad >= kw);
            check(n, [c, h, w], o, (kh, kw), stride, pad, sparsity, bias, relu_, seed)
                .map_err(TestCaseError::fail)?;
        }
    }

    /// The model layers' shapes, at several sparsities, including all-zero rows.
    #[test]
    fn model_layer_shapes() {
        for (input, o, k, pad) in [
            ([1, 28, 28], 20, 5, 0),
            ([20, 12, 12], 50, 5, 0),
            ([1, 28, 28], 8, 5, 2),
            ([8, 14, 14], 16, 5, 2),
            ([4, 32, 32], 4, 3, 1),
        ] {
            for sp in [0.0, 0.5, 0.9, 0.99, 1.0] {
                check(1, input, o, (k, k), 1, pad, sp, true, true, 3).unwrap();
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let w = [1.0; 2 * 3 * 9];
        assert!(SparseConv::from_dense(&w, [2, 3, 3, 3], [3, 2, 2], None, 1, 0, false).is_err());
        assert!(SparseConv::from_dense(&w, [2, 3, 3, 3], [3, 5, 5], None, 0, 0, false).is_err());
        assert!(
            SparseConv::from_dense(&w, [2, 3, 3, 3], [3, 5, 5], Some(&[0.0]), 1, 0, false).is_err()
        );
        assert!(SparseConv::from_dense(&w, [2, 3, 3, 2], [3, 5, 5], None, 1, 0, false).is_err());
    }
}
