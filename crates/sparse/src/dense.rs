//! The dense fallback kernels for batch-1 inference: layers whose weights are too dense
//! for CSR to pay (see [`crate::model::KernelChoice`]) run these, and the benches run them
//! as the dense baseline. No allocation per call.
//!
//! - [`DenseLinear`]: row-major `W [out, in]` times a vector, 16 partial sums per row so
//!   the loop vectorises (one AVX-512 register).
//! - [`DenseConv`]: the engine's direct stride-1 kernel
//!   (`rcc_tensor::kernels::direct_conv`: 8 channels x 16 positions of accumulators in
//!   registers, padded-width grid), called per sample.

use crate::error::{shape, Result};
use crate::linear::relu;
use rcc_tensor::kernels::direct_conv::{self, Grid};
use rcc_tensor::kernels::{Isa, IsaKind};

/// A linear layer with dense weights `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLinear {
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
    pub relu: bool,
    pub fin: usize,
    pub fout: usize,
    isa: Isa,
}

impl DenseLinear {
    pub fn new(w: Vec<f32>, fout: usize, fin: usize, bias: Vec<f32>, relu: bool) -> Result<Self> {
        if w.len() != fout * fin || bias.len() != fout {
            return shape(
                "dense linear weights and bias",
                format!("{fout} x {fin} and {fout}"),
                format!("{} and {}", w.len(), bias.len()),
            );
        }
        Ok(DenseLinear {
            w,
            bias,
            relu,
            fin,
            fout,
            isa: Isa::detect(),
        })
    }

    /// `x [N, in]` -> `y [N, out]`.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let n = x.len().checked_div(self.fin).unwrap_or(0);
        assert!(
            x.len() == n * self.fin && y.len() == n * self.fout,
            "dense linear: x has {} values, y {} (in {}, out {})",
            x.len(),
            y.len(),
            self.fin,
            self.fout
        );
        for (xs, ys) in x.chunks_exact(self.fin).zip(y.chunks_exact_mut(self.fout)) {
            match self.isa.kind() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Isa` exists only for an instruction set this CPU has; the body
                // is safe code.
                IsaKind::Avx512 => unsafe { self.sample_avx512(xs, ys) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                IsaKind::Avx2Fma => unsafe { self.sample_avx2(xs, ys) },
                _ => self.sample(xs, ys),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn sample_avx512(&self, x: &[f32], y: &mut [f32]) {
        self.sample(x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sample_avx2(&self, x: &[f32], y: &mut [f32]) {
        self.sample(x, y)
    }

    #[inline(always)]
    fn sample(&self, x: &[f32], y: &mut [f32]) {
        for ((yo, row), &b) in y
            .iter_mut()
            .zip(self.w.chunks_exact(self.fin))
            .zip(&self.bias)
        {
            let s = dot(row, x) + b;
            *yo = if self.relu { relu(s) } else { s };
        }
    }

    /// `dx += W^T dy` for one sample.
    pub fn input_grad(&self, dy: &[f32], dx: &mut [f32]) {
        for (row, &d) in self.w.chunks_exact(self.fin).zip(dy) {
            if d != 0.0 {
                dx.iter_mut().zip(row).for_each(|(g, &w)| *g += d * w);
            }
        }
    }
}

/// Dot product with 16 partial sums.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (a16, at) = a.split_at(a.len() / L * L);
    let (b16, bt) = b.split_at(a16.len());
    for (ac, bc) in a16.chunks_exact(L).zip(b16.chunks_exact(L)) {
        for l in 0..L {
            acc[l] += ac[l] * bc[l];
        }
    }
    let mut s = 0.0;
    for (&u, &v) in at.iter().zip(bt) {
        s += u * v;
    }
    // Pairwise reduction of the partial sums.
    let mut w = L;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0] + s
}

/// A stride-1 convolution with dense weights, through the engine's direct kernel.
#[derive(Clone, Debug)]
pub struct DenseConv {
    pub grid: Grid,
    /// Weights regrouped by `direct_conv::block_weights`: `[O/8][K][8]`.
    pub wb: Vec<f32>,
    pub o: usize,
    pub c: usize,
    pub bias: Vec<f32>,
    pub relu: bool,
    isa: Isa,
}

impl DenseConv {
    /// From dense weights `[O, C*KH*KW]` for inputs `[C, H, W]`, stride 1.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: &[f32],
        o: usize,
        [c, h, wd]: [usize; 3],
        kh: usize,
        kw: usize,
        pad: usize,
        bias: Vec<f32>,
        relu: bool,
    ) -> Result<DenseConv> {
        let k = c * kh * kw;
        if w.len() != o * k || bias.len() != o || h + 2 * pad < kh || wd + 2 * pad < kw {
            return shape(
                "dense conv",
                format!("weights {o} x {k}, bias {o}, input at least the kernel"),
                format!(
                    "{} weights, {} biases, input {c}x{h}x{wd} pad {pad}",
                    w.len(),
                    bias.len()
                ),
            );
        }
        Ok(DenseConv {
            grid: Grid::new(c, h, wd, kh, kw, pad),
            wb: direct_conv::block_weights(w, o, k),
            o,
            c,
            bias,
            relu,
            isa: Isa::detect(),
        })
    }

    pub fn in_len(&self) -> usize {
        let (h, w) = (
            self.grid.hp() - 2 * self.grid.pad(),
            self.grid.wp() - 2 * self.grid.pad(),
        );
        self.c * h * w
    }
    pub fn out_len(&self) -> usize {
        self.o * self.grid.oh() * self.grid.ow()
    }
    pub fn xp_len(&self) -> usize {
        self.grid.xp_len()
    }
    /// Weight `(o, t)` (t = flattened tap `(c*KH + ki)*KW + kj`).
    pub fn weight(&self, o: usize, t: usize) -> f32 {
        let k = self.grid.off().len();
        self.wb[((o / 8) * k + t) * 8 + o % 8]
    }

    /// `x [N, C, H, W]` -> `y [N, O, OH, OW]`; `xp` scratch of at least `xp_len`.
    pub fn forward(&self, x: &[f32], xp: &mut [f32], y: &mut [f32]) {
        let (il, ol) = (self.in_len(), self.out_len());
        let xp = &mut xp[..self.grid.xp_len()];
        for (xs, ys) in x.chunks_exact(il).zip(y.chunks_exact_mut(ol)) {
            self.grid.pad_into(xs, self.c, xp);
            direct_conv::forward_sample(
                self.isa,
                &self.grid,
                xp,
                &self.wb,
                self.o,
                Some(&self.bias),
                self.relu,
                false,
                ys,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::tests::{close, sparse_vec};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn linear_matches_engine(n in 1usize..3, fin in 1usize..200, fout in 1usize..30,
                                 relu_: bool, seed in 0u64..1000) {
            let w = sparse_vec(fout * fin, 0.3, seed);
            let b = sparse_vec(fout, 0.0, seed + 1);
            let x = sparse_vec(n * fin, 0.0, seed + 2);
            let l = DenseLinear::new(w.clone(), fout, fin, b.clone(), relu_).unwrap();
            let mut y = vec![f32::NAN; n * fout];
            l.forward(&x, &mut y);
            let want = rcc_tensor::ops::linear::forward(&x, &w, Some(&b), relu_, n, fin, fout);
            prop_assert!(close(&y, &want, 1e-5));
        }

        #[test]
        fn conv_matches_engine(c in 1usize..5, h in 1usize..14, wd in 1usize..14, o in 1usize..12,
                               k in 1usize..6, pad in 0usize..3, relu_: bool, seed in 0u64..1000) {
            prop_assume!(h + 2 * pad >= k && wd + 2 * pad >= k);
            let w = sparse_vec(o * c * k * k, 0.3, seed);
            let b = sparse_vec(o, 0.0, seed + 1);
            let x = sparse_vec(c * h * wd, 0.0, seed + 2);
            let conv = DenseConv::new(&w, o, [c, h, wd], k, k, pad, b.clone(), relu_).unwrap();
            let mut xp = vec![f32::NAN; conv.xp_len()];
            let mut y = vec![f32::NAN; conv.out_len()];
            conv.forward(&x, &mut xp, &mut y);
            let g = rcc_tensor::ops::conv2d::Conv2dGeom::new(&[1, c, h, wd], &[o, c, k, k], 1, pad).unwrap();
            let want = rcc_tensor::ops::conv2d::forward(&g, &x, &w, Some(&b), relu_);
            prop_assert!(close(&y, &want, 1e-5));
            prop_assert_eq!(conv.weight(o - 1, c * k * k - 1), w[o * c * k * k - 1]);
        }
    }
}
