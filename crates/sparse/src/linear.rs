//! Sparse linear layer: `y = act(W x + b)` with `W` in CSR (row = output feature).

use crate::csr::{ColIdx, Csr};
use crate::error::{shape, Result};

/// A linear layer with CSR weights `[out, in]`, a bias (zeros when the layer has none)
/// and an optional fused ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseLinear {
    pub w: Csr,
    pub bias: Vec<f32>,
    pub relu: bool,
}

/// A column index type of the kernels.
pub(crate) trait Idx: Copy {
    fn ix(self) -> usize;
}
impl Idx for u16 {
    #[inline(always)]
    fn ix(self) -> usize {
        self as usize
    }
}
impl Idx for u32 {
    #[inline(always)]
    fn ix(self) -> usize {
        self as usize
    }
}

impl SparseLinear {
    /// From dense row-major weights `[out, in]`.
    pub fn from_dense(
        w: &[f32],
        fout: usize,
        fin: usize,
        bias: Option<&[f32]>,
        relu: bool,
    ) -> Result<SparseLinear> {
        let w = Csr::from_dense(w, fout, fin)?;
        SparseLinear::new(w, bias.map_or(vec![0.0; fout], <[f32]>::to_vec), relu)
    }

    /// From CSR weights `[out, in]`.
    pub fn new(w: Csr, bias: Vec<f32>, relu: bool) -> Result<SparseLinear> {
        if bias.len() != w.rows() {
            return shape("linear bias", w.rows(), bias.len());
        }
        Ok(SparseLinear { w, bias, relu })
    }

    /// `dx += W^T dy` for one sample (`dy` is the gradient of the pre-activation): each
    /// row's non-zeros scatter `w * dy[row]` into `dx`.
    pub fn input_grad(&self, dy: &[f32], dx: &mut [f32]) {
        assert!(
            dy.len() == self.fout() && dx.len() == self.fin(),
            "sparse linear input gradient: lengths"
        );
        let vals = self.w.values();
        for (r, &d) in dy.iter().enumerate() {
            if d == 0.0 {
                continue;
            }
            let range = self.w.row_range(r);
            for (k, &v) in range.clone().zip(&vals[range]) {
                dx[self.w.col_idx().get(k)] += v * d;
            }
        }
    }

    pub fn fin(&self) -> usize {
        self.w.cols()
    }
    pub fn fout(&self) -> usize {
        self.w.rows()
    }

    /// Multiply-adds actually executed per sample.
    pub fn macs(&self) -> usize {
        self.w.nnz()
    }

    /// `x [N, in]` -> `y [N, out]` for `N = x.len() / in` samples.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        self.forward_with(gather_isa(), x, y)
    }

    /// As `forward`, with the AVX-512 gather kernel only when `gather` (and available).
    pub(crate) fn forward_with(&self, gather: bool, x: &[f32], y: &mut [f32]) {
        let (fin, fout) = (self.fin(), self.fout());
        let n = x.len().checked_div(fin).unwrap_or(0);
        assert!(
            x.len() == n * fin && y.len() == n * fout,
            "sparse linear: x has {} values, y {} (in {fin}, out {fout})",
            x.len(),
            y.len()
        );
        for (xs, ys) in x.chunks_exact(fin).zip(y.chunks_exact_mut(fout)) {
            match self.w.col_idx() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `gather_isa` checked the CPU; bounds as in `sample`.
                ColIdx::U16(ix) if gather && gather_isa() => unsafe {
                    self.sample_gather_u16(ix, xs, ys)
                },
                ColIdx::U16(ix) => self.sample(ix, xs, ys),
                ColIdx::U32(ix) => self.sample(ix, xs, ys),
            }
        }
    }

    /// One sample with AVX-512 gathers: per row, 16 non-zeros at a time, their 16-bit
    /// indices widened and the 16 inputs gathered in one instruction; the row's tail is a
    /// masked load and gather (masked lanes read nothing).
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VL. `x` has `cols` values (`Csr` guarantees every
    /// index is below `cols`, so every gathered address is inside `x`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn sample_gather_u16(&self, ix: &[u16], x: &[f32], y: &mut [f32]) {
        use std::arch::x86_64::*;
        let vals = self.w.values();
        let rp = self.w.row_ptr();
        for (r, (yr, &b)) in y.iter_mut().zip(&self.bias).enumerate() {
            let (mut k, end) = (rp[r] as usize, rp[r + 1] as usize);
            let mut acc = _mm512_setzero_ps();
            while k + 16 <= end {
                let vi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(ix.as_ptr().add(k).cast()));
                let xv = _mm512_i32gather_ps::<4>(vi, x.as_ptr().cast());
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(vals.as_ptr().add(k)), xv, acc);
                k += 16;
            }
            if k < end {
                let m: __mmask16 = ((1u32 << (end - k)) - 1) as u16;
                let vi =
                    _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, ix.as_ptr().add(k).cast()));
                let xv =
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, vi, x.as_ptr().cast());
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, vals.as_ptr().add(k)), xv, acc);
            }
            let s = _mm512_reduce_add_ps(acc) + b;
            *yr = if self.relu { relu(s) } else { s };
        }
    }

    /// One sample: `x [in]`, `y [out]` (lengths checked by the caller).
    fn sample<I: Idx>(&self, ix: &[I], x: &[f32], y: &mut [f32]) {
        let vals = self.w.values();
        for (r, (yr, &b)) in y.iter_mut().zip(&self.bias).enumerate() {
            let range = self.w.row_range(r);
            let (v, ix) = (&vals[range.clone()], &ix[range]);
            // Four independent partial sums: the gathers of one row overlap.
            let mut acc = [0f32; 4];
            let (v4, vt) = v.split_at(v.len() & !3);
            let (i4, it) = ix.split_at(v4.len());
            let xg = |i: I| {
                // SAFETY: `Csr` is validated at construction (its fields are private):
                // every column index is below `cols`, and `forward` checked that each
                // sample slice `x` has exactly `cols` values.
                unsafe { *x.get_unchecked(i.ix()) }
            };
            for (vc, ic) in v4.chunks_exact(4).zip(i4.chunks_exact(4)) {
                for l in 0..4 {
                    acc[l] += vc[l] * xg(ic[l]);
                }
            }
            for (&vv, &ii) in vt.iter().zip(it) {
                acc[0] += vv * xg(ii);
            }
            let s = (acc[0] + acc[1]) + (acc[2] + acc[3]) + b;
            *yr = if self.relu { relu(s) } else { s };
        }
    }
}

/// Whether the AVX-512 gather kernel can run here (cached by the standard library).
fn gather_isa() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// ReLU that keeps NaN (as the engine's).
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// `max|a - b| <= tol * (1 + max|b|)`, elementwise.
    pub fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + scale))
    }

    /// Random values with a fraction `sparsity` of exact zeros.
    pub fn sparse_vec(n: usize, sparsity: f64, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                if rng.gen_bool(sparsity) {
                    0.0
                } else {
                    rng.gen_range(-1.0f32..1.0)
                }
            })
            .collect()
    }

    /// The naive dense reference, f64 accumulation.
    fn naive(x: &[f32], w: &[f32], b: Option<&[f32]>, relu_: bool, fin: usize) -> Vec<f32> {
        let fout = w.len() / fin.max(1);
        let mut y = vec![];
        for xs in x.chunks_exact(fin) {
            for o in 0..fout {
                let s: f64 = (0..fin)
                    .map(|i| w[o * fin + i] as f64 * xs[i] as f64)
                    .sum::<f64>()
                    + b.map_or(0.0, |b| b[o] as f64);
                let s = s as f32;
                y.push(if relu_ { relu(s) } else { s });
            }
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn matches_dense(n in 1usize..4, fin in 1usize..300, fout in 1usize..40, sparsity in 0.0f64..0.99,
                         bias: bool, relu_: bool, seed in 0u64..10_000) {
            let w = sparse_vec(fout * fin, sparsity, seed);
            let x = sparse_vec(n * fin, 0.0, seed + 1);
            let b = sparse_vec(fout, 0.0, seed + 2);
            let b = bias.then_some(&b[..]);
            let l = SparseLinear::from_dense(&w, fout, fin, b, relu_).unwrap();
            let want = naive(&x, &w, b, relu_, fin);
            let mut y = vec![f32::NAN; n * fout];
            l.forward_with(false, &x, &mut y);
            prop_assert!(close(&y, &want, 1e-5), "portable vs naive");
            let mut y = vec![f32::NAN; n * fout];
            l.forward(&x, &mut y);
            prop_assert!(close(&y, &want, 1e-5), "vs naive");
            let engine = rcc_tensor::ops::linear::forward(&x, &w, b, relu_, n, fin, fout);
            prop_assert!(close(&y, &engine, 1e-5), "vs engine");
            // Input gradient against the dense transpose, f64.
            let dy = sparse_vec(fout, 0.2, seed + 3);
            let mut dx = vec![0.0; fin];
            l.input_grad(&dy, &mut dx);
            let want: Vec<f32> = (0..fin)
                .map(|i| (0..fout).map(|o| w[o * fin + i] as f64 * dy[o] as f64).sum::<f64>() as f32)
                .collect();
            prop_assert!(close(&dx, &want, 1e-5), "input gradient");
        }
    }

    #[test]
    fn wide_layer_uses_u32_indices() {
        let (fin, fout) = (70_000, 3);
        let w = sparse_vec(fin * fout, 0.999, 5);
        let x = sparse_vec(fin, 0.0, 6);
        let l = SparseLinear::from_dense(&w, fout, fin, None, false).unwrap();
        assert!(matches!(l.w.col_idx(), ColIdx::U32(_)));
        let mut y = vec![0.0; fout];
        l.forward(&x, &mut y);
        assert!(close(&y, &naive(&x, &w, None, false, fin), 1e-5));
    }

    #[test]
    fn bad_bias_is_an_error() {
        assert!(SparseLinear::from_dense(&[1.0; 6], 2, 3, Some(&[0.0; 3]), false).is_err());
    }
}
