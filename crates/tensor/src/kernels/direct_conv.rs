//! Direct convolution for stride 1: no im2col, the kernel reads the (padded) input.
//!
//! Each sample is copied once into a zero-padded buffer `xp [C, HP, WP]`
//! (HP = H + 2*pad, WP = W + 2*pad). Output positions are then taken on the padded-width grid:
//! position `q = oy*WP + ox`, with columns `ox >= OW` computed and discarded. On that
//! grid, kernel tap `t = (c, ki, kj)` reads the input at `q + off[t]`, with
//! `off[t] = c*HP*WP + ki*WP + kj`. So 16 consecutive outputs read 16 consecutive inputs, one
//! load per tap, with no bounds checks or row tails.
//! - **Forward**: for blocks of 8 output channels and 16 positions,
//!   `acc[o][l] += w[o, t] * xp[q0 + l + off[t]]` over all taps. That is one input load per
//!   8 FMAs, with 8 x 16 accumulators in registers.
//! - **Input gradient**: the same kernel on `dy`, padded by `K-1-pad`, with the weights
//!   flipped and transposed to `[C, O, KH, KW]`: the adjoint of a stride-1 convolution is
//!   a stride-1 convolution.
//! - **Weight gradient**: `dW[o, t] = sum_q dyp[o][q] * xp[q + off[t]]`, with `dyp` the
//!   output gradient laid out on the same padded-width grid (zeros in discarded columns).
//!   These are blocked dot products, 8 channels at a time, reduced per chunk of samples.
//!
//! The im2col + GEMM path in `ops::conv2d` is the reference these kernels are tested
//! against. It also serves strides other than 1.

use super::{Isa, IsaKind};
use crate::ops::conv2d::Conv2dGeom;

/// Positions per accumulator (one AVX-512 register of f32).
const L: usize = 16;
/// Output channels per register block.
const OB: usize = 8;

/// Geometry of the padded-width grid for one convolution. Its fields are private and
/// only [`Grid::new`] makes one, so every grid the kernels see is consistent: `q` a
/// multiple of `L` and `xp_len` covering the last block's reads (the kernels still check
/// both against the buffers they are given).
#[derive(Clone, Debug)]
pub struct Grid {
    /// Padded input plane: rows, columns.
    hp: usize,
    wp: usize,
    /// Output positions on the grid (OH*WP), rounded up to a multiple of L.
    q: usize,
    /// Input offset of each tap (c, ki, kj).
    off: Vec<usize>,
    /// Length of a padded sample buffer, including slack for the last block's reads.
    xp_len: usize,
    oh: usize,
    ow: usize,
    pad: usize,
}

impl Grid {
    /// The grid of input `[C, H, W]` padded by `pad` under a `KH x KW` kernel (stride 1).
    pub fn new(c: usize, h: usize, w: usize, kh: usize, kw: usize, pad: usize) -> Grid {
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let (oh, ow) = (hp + 1 - kh, wp + 1 - kw);
        let q = (oh * wp).next_multiple_of(L);
        let mut off = Vec::with_capacity(c * kh * kw);
        for ci in 0..c {
            for ki in 0..kh {
                for kj in 0..kw {
                    off.push(ci * hp * wp + ki * wp + kj);
                }
            }
        }
        let max_off = off.iter().copied().max().unwrap_or(0);
        Grid {
            hp,
            wp,
            q,
            xp_len: (c * hp * wp).max(max_off + q),
            off,
            oh,
            ow,
            pad,
        }
    }

    /// Padded input plane: rows.
    pub fn hp(&self) -> usize {
        self.hp
    }
    /// Padded input plane: columns (the grid's row stride).
    pub fn wp(&self) -> usize {
        self.wp
    }
    /// Output positions on the grid (`oh * wp`), rounded up to a multiple of 16.
    pub fn q(&self) -> usize {
        self.q
    }
    /// Input offset of each tap `(c, ki, kj)`.
    pub fn off(&self) -> &[usize] {
        &self.off
    }
    /// Length of a padded sample buffer, with slack for the last block's reads.
    pub fn xp_len(&self) -> usize {
        self.xp_len
    }
    /// Output rows.
    pub fn oh(&self) -> usize {
        self.oh
    }
    /// Output columns.
    pub fn ow(&self) -> usize {
        self.ow
    }
    /// Zero padding on each side.
    pub fn pad(&self) -> usize {
        self.pad
    }

    /// Zero-padded copy of one sample `x [C, H, W]` into `xp` (`xp_len` values).
    pub fn pad_into(&self, x: &[f32], c: usize, xp: &mut [f32]) {
        let (h, w) = (self.hp - 2 * self.pad, self.wp - 2 * self.pad);
        xp.fill(0.0);
        for ci in 0..c {
            for iy in 0..h {
                let dst = (ci * self.hp + iy + self.pad) * self.wp + self.pad;
                xp[dst..dst + w].copy_from_slice(&x[(ci * h + iy) * w..][..w]);
            }
        }
    }
}

/// Weights `[O, K]` regrouped as `[O/8 blocks][K][8]` (zero rows past O), so a block's
/// 8 weights of one tap are contiguous.
pub fn block_weights(w: &[f32], o: usize, k: usize) -> Vec<f32> {
    let blocks = o.div_ceil(OB);
    let mut wb = vec![0.0; blocks * k * OB];
    for oc in 0..o {
        for t in 0..k {
            wb[((oc / OB) * k + t) * OB + oc % OB] = w[oc * k + t];
        }
    }
    wb
}

/// Weights of the adjoint (input-gradient) convolution: `w [O, C, KH, KW]` flipped in
/// space and transposed to `[C, O, KH, KW]`.
pub fn adjoint_weights(g: &Conv2dGeom, w: &[f32]) -> Vec<f32> {
    let mut wt = vec![0.0; w.len()];
    for o in 0..g.o {
        for c in 0..g.c {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let src = ((o * g.c + c) * g.kh + ki) * g.kw + kj;
                    let dst = ((c * g.o + o) * g.kh + (g.kh - 1 - ki)) * g.kw + (g.kw - 1 - kj);
                    wt[dst] = w[src];
                }
            }
        }
    }
    wt
}

/// One forward block: 16 positions x 8 channels, `acc[o][l] = sum_t w[t][o] *
/// xp[q0 + l + off[t]]`. The caller guarantees `q0 + max(off) + L <= xp.len()` and
/// `wb.len() == off.len() * OB`.
fn forward_block(
    isa: Isa,
    xp: &[f32],
    q0: usize,
    off: &[usize],
    wb: &[f32],
    acc: &mut [[f32; L]; OB],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` exists only for an instruction set this CPU has; the bounds
        // (`q` a multiple of L, `q + max(off) <= xp.len()`) are asserted by the caller
        // (forward_sample), and every read is `xp[q0 + off .. q0 + off + L]` or `wb[..]`.
        IsaKind::Avx512 => unsafe { x86::forward_block_avx512(xp.as_ptr().add(q0), off, wb, acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IsaKind::Avx2Fma => unsafe { x86::forward_block_avx2(xp.as_ptr().add(q0), off, wb, acc) },
        _ => {
            *acc = [[0.0; L]; OB];
            for (wt, &o) in wb.chunks_exact(OB).zip(off) {
                let x = &xp[q0 + o..q0 + o + L];
                for (a, &wv) in acc.iter_mut().zip(wt) {
                    for (al, &xl) in a.iter_mut().zip(x) {
                        *al += wv * xl;
                    }
                }
            }
        }
    }
}

/// One sample: `y [O, OH, OW] = act(conv(xp, w) + b)`, or `y += conv(xp, w)` when
/// `accumulate` (bias and activation then ignored). `wb` from [`block_weights`].
#[allow(clippy::too_many_arguments)]
pub fn forward_sample(
    isa: Isa,
    grid: &Grid,
    xp: &[f32],
    wb: &[f32],
    o: usize,
    bias: Option<&[f32]>,
    relu: bool,
    accumulate: bool,
    y: &mut [f32],
) {
    let k = grid.off().len();
    let (ow, p) = (grid.ow(), grid.oh() * grid.ow());
    let max_off = grid.off().iter().copied().max().unwrap_or(0);
    // Every read of the vector blocks is `xp[q0 + off + l]` with `q0 + l < q`: these
    // bounds make the unchecked loads in `forward_block` safe.
    assert!(
        grid.q().is_multiple_of(L) && grid.q() + max_off <= xp.len(),
        "direct conv: a padded input of {} values for a grid that reads {} (q {}, largest tap offset {max_off})",
        xp.len(),
        grid.q() + max_off,
        grid.q()
    );
    assert!(
        wb.len() == o.div_ceil(OB) * k * OB && y.len() >= o * p,
        "direct conv: {} blocked weights for {o} channels of {k} taps, an output of {} values for {}",
        wb.len(),
        y.len(),
        o * p
    );
    let mut acc = [[0f32; L]; OB];
    for (blk, wblk) in wb.chunks_exact(k * OB).enumerate() {
        let o0 = blk * OB;
        let nob = OB.min(o - o0);
        for q0 in (0..grid.q()).step_by(L) {
            forward_block(isa, xp, q0, grid.off(), wblk, &mut acc);
            // Store the lanes that are real output positions: walk the block's 16
            // positions as runs along grid rows (no division per lane).
            let (mut oy, mut ox) = (q0 / grid.wp(), q0 % grid.wp());
            let mut l = 0;
            while l < L && oy < grid.oh() {
                let run = (L - l).min(grid.wp() - ox);
                let valid = run.min(ow.saturating_sub(ox));
                // A run inside the padding columns stores nothing (and on the last row its
                // start would lie past the end of the output).
                for (i, a) in acc.iter().enumerate().take(if valid > 0 { nob } else { 0 }) {
                    let dst = &mut y[(o0 + i) * p + oy * ow + ox..][..valid];
                    let src = &a[l..l + valid];
                    if accumulate {
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    } else {
                        let bv = bias.map_or(0.0, |b| b[o0 + i]);
                        if relu {
                            dst.iter_mut()
                                .zip(src)
                                .for_each(|(d, s)| *d = crate::ops::relu::relu(s + bv));
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + bv);
                        }
                    }
                }
                l += run;
                (oy, ox) = (oy + 1, 0);
            }
        }
    }
}

/// One weight-gradient block over all samples of a chunk, for one tap offset:
/// `acc[o][l] = sum_s sum_q0 dyps[s][blk][o][q0 + l] * xps[s][off + q0 + l]`.
/// Sample `s` starts at `s * xl` in `xps` and at `s * ds` in `dyb` (already offset to the
/// block); each block is `OB` rows of `q` values.
#[allow(clippy::too_many_arguments)]
fn weight_grad_block(
    isa: Isa,
    xps: &[f32],
    xl: usize,
    off: usize,
    dyb: &[f32],
    ds: usize,
    q: usize,
    samples: usize,
    acc: &mut [[f32; L]; OB],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` exists only for an instruction set this CPU has; the caller
        // (weight_grad) asserts that every read,
        // `xps[s*xl + off + q0 ..][..L]` and `dyb[s*ds + o*q + q0 ..][..L]`, is in bounds.
        IsaKind::Avx512 => unsafe {
            x86::weight_grad_block_avx512(
                xps.as_ptr().add(off),
                xl,
                dyb.as_ptr(),
                ds,
                q,
                samples,
                acc,
            )
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IsaKind::Avx2Fma => unsafe {
            x86::weight_grad_block_avx2(
                xps.as_ptr().add(off),
                xl,
                dyb.as_ptr(),
                ds,
                q,
                samples,
                acc,
            )
        },
        _ => {
            *acc = [[0.0; L]; OB];
            for s in 0..samples {
                for (i, a) in acc.iter_mut().enumerate() {
                    let d = &dyb[s * ds + i * q..][..q];
                    let x = &xps[s * xl + off..][..q];
                    for q0 in (0..q).step_by(L) {
                        for l in 0..L {
                            a[l] += d[q0 + l] * x[q0 + l];
                        }
                    }
                }
            }
        }
    }
}

/// Weight gradient of `samples` samples: `dw [O, K] += sum_s sum_q dyp * xp[q + off]`.
/// `xps`: the samples' padded inputs (`xp_len` each); `dyps`: their output gradients
/// on the grid, `[samples][O/8 blocks][8][q]`, zero outside real positions.
pub fn weight_grad(
    isa: Isa,
    grid: &Grid,
    xps: &[f32],
    dyps: &[f32],
    o: usize,
    samples: usize,
    dw: &mut [f32],
) {
    let k = grid.off().len();
    let blocks = o.div_ceil(OB);
    let (xl, ql) = (grid.xp_len(), grid.q());
    let ds = blocks * OB * ql;
    let max_off = grid.off().iter().copied().max().unwrap_or(0);
    assert!(
        ql % L == 0
            && ql + max_off <= xl
            && xps.len() >= samples * xl
            && dyps.len() >= samples * ds
            && dw.len() >= o * k
    );
    let mut acc = [[0f32; L]; OB];
    for blk in 0..blocks {
        let nob = OB.min(o - blk * OB);
        let dyb = &dyps[blk * OB * ql..];
        for (t, &off) in grid.off().iter().enumerate() {
            weight_grad_block(isa, xps, xl, off, dyb, ds, ql, samples, &mut acc);
            for (i, a) in acc.iter().enumerate().take(nob) {
                dw[(blk * OB + i) * k + t] += a.iter().sum::<f32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{L, OB};
    use std::arch::x86_64::*;

    /// SAFETY: AVX-512F present; `x.add(off + L)` in bounds for every `off`;
    /// `wb.len() == off.len() * OB`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn forward_block_avx512(
        x: *const f32,
        off: &[usize],
        wb: &[f32],
        out: &mut [[f32; L]; OB],
    ) {
        let mut acc = [_mm512_setzero_ps(); OB];
        for (t, &o) in off.iter().enumerate() {
            let xv = _mm512_loadu_ps(x.add(o));
            let w = wb.as_ptr().add(t * OB);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(i)), xv, *a);
            }
        }
        for (dst, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(dst.as_mut_ptr(), a);
        }
    }

    /// SAFETY: AVX2 and FMA present; bounds as for the AVX-512 version. The 16 positions
    /// are two halves of 8 (8 accumulators each, within AVX2's 16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_block_avx2(
        x: *const f32,
        off: &[usize],
        wb: &[f32],
        out: &mut [[f32; L]; OB],
    ) {
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); OB];
            for (t, &o) in off.iter().enumerate() {
                let xv = _mm256_loadu_ps(x.add(o + 8 * half));
                let w = wb.as_ptr().add(t * OB);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(*w.add(i)), xv, *a);
                }
            }
            for (dst, a) in out.iter_mut().zip(acc) {
                _mm256_storeu_ps(dst.as_mut_ptr().add(8 * half), a);
            }
        }
    }

    /// SAFETY: AVX-512F present; for every sample `s < samples`, row `o < OB` and
    /// `q0 < q`: `x.add(s*xl + q0 + L)` and `d.add(s*ds + o*q + q0 + L)` are in bounds.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weight_grad_block_avx512(
        x: *const f32,
        xl: usize,
        d: *const f32,
        ds: usize,
        q: usize,
        samples: usize,
        out: &mut [[f32; L]; OB],
    ) {
        let mut acc = [_mm512_setzero_ps(); OB];
        for s in 0..samples {
            let (xs, dsb) = (x.add(s * xl), d.add(s * ds));
            for q0 in (0..q).step_by(L) {
                let xv = _mm512_loadu_ps(xs.add(q0));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_loadu_ps(dsb.add(i * q + q0)), xv, *a);
                }
            }
        }
        for (dst, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(dst.as_mut_ptr(), a);
        }
    }

    /// SAFETY: AVX2 and FMA present; bounds as for the AVX-512 version.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weight_grad_block_avx2(
        x: *const f32,
        xl: usize,
        d: *const f32,
        ds: usize,
        q: usize,
        samples: usize,
        out: &mut [[f32; L]; OB],
    ) {
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); OB];
            for s in 0..samples {
                let (xs, dsb) = (x.add(s * xl + 8 * half), d.add(s * ds + 8 * half));
                for q0 in (0..q).step_by(L) {
                    let xv = _mm256_loadu_ps(xs.add(q0));
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(_mm256_loadu_ps(dsb.add(i * q + q0)), xv, *a);
                    }
                }
            }
            for (dst, a) in out.iter_mut().zip(acc) {
                _mm256_storeu_ps(dst.as_mut_ptr().add(8 * half), a);
            }
        }
    }
}

/// Lays one sample's output gradient `dy [O, OH, OW]` onto the grid: `[O/8 blocks][8][q]`
/// (rows `>= O` and columns `>= OW` zero).
pub fn dy_to_grid(grid: &Grid, dy: &[f32], o: usize, out: &mut [f32]) {
    out.fill(0.0);
    let (ow, p) = (grid.ow(), grid.oh() * grid.ow());
    for oc in 0..o {
        let row = &mut out[oc * grid.q()..(oc + 1) * grid.q()];
        for oy in 0..grid.oh() {
            row[oy * grid.wp()..oy * grid.wp() + ow].copy_from_slice(&dy[oc * p + oy * ow..][..ow]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A padded input shorter than the grid reads is refused with a message naming the
    /// sizes, before any vector load: never a read past the buffer.
    #[test]
    #[should_panic(expected = "direct conv: a padded input of 10 values for a grid that reads")]
    fn a_short_padded_input_is_refused() {
        let grid = Grid::new(1, 6, 6, 3, 3, 1);
        let (o, k) = (8, grid.off().len());
        let wb = block_weights(&vec![0.5; o * k], o, k);
        let mut y = vec![0.0; o * grid.oh() * grid.ow()];
        forward_sample(
            Isa::detect(),
            &grid,
            &[0.0; 10],
            &wb,
            o,
            None,
            false,
            false,
            &mut y,
        );
    }

    /// Every grid `Grid::new` makes has `q` a multiple of 16 and a buffer that covers
    /// the last block's reads.
    #[test]
    fn grids_cover_their_reads() {
        for (c, h, k, pad) in [(1, 28, 5, 2), (3, 7, 3, 1), (2, 5, 5, 0), (4, 1, 1, 0)] {
            let g = Grid::new(c, h, h, k, k, pad);
            let max_off = g.off().iter().copied().max().unwrap();
            assert!(g.q().is_multiple_of(L) && g.q() + max_off <= g.xp_len());
            assert_eq!((g.oh(), g.ow()), (h + 2 * pad + 1 - k, h + 2 * pad + 1 - k));
        }
    }
}
