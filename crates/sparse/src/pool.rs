//! Max and average pooling of one sample `[C, H, W]`, no padding, floor mode, with their
//! input gradients. Max pooling matches the engine (`rcc_tensor::ops::max_pool2d`): the
//! first maximum in row-major order wins ties (strict `>`), and the gradient goes to it.
//!
//! The maximum is taken with a select (`if v > m { v } else { m }`), not a branch: on
//! real activations the branch is unpredictable and cost 6 ns per output.

/// Pooling geometry for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Pool {
    /// For input `[c, h, w]` (the caller validated `h, w >= k >= 1`, `s >= 1`).
    pub fn new([c, h, w]: [usize; 3], k: usize, s: usize) -> Pool {
        Pool {
            c,
            h,
            w,
            k,
            s,
            oh: (h - k) / s + 1,
            ow: (w - k) / s + 1,
        }
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }
}

#[inline(always)]
fn max_sel(m: f32, v: f32) -> f32 {
    if v > m {
        v
    } else {
        m
    }
}

/// The max of one `k x k` window of a plane with row stride `w`, starting at `base`.
#[inline(always)]
pub(crate) fn window_max(plane: &[f32], w: usize, base: usize, k: usize) -> f32 {
    let mut m = plane[base];
    for ki in 0..k {
        for &v in &plane[base + ki * w..][..k] {
            m = max_sel(m, v);
        }
    }
    m
}

/// Max pooling of one plane with row stride `stride_in` (>= the plane's width) into
/// `out [oh, ow]`, then `f` applied to each maximum (bias and ReLU, when fused).
#[inline(always)]
pub(crate) fn max_pool_plane(
    plane: &[f32],
    stride_in: usize,
    p: &Pool,
    out: &mut [f32],
    f: impl Fn(f32) -> f32,
) {
    if p.k == 2 && p.s == 2 {
        // The common case: two input rows per output row, pairs of columns.
        for (oy, orow) in out.chunks_exact_mut(p.ow).enumerate() {
            let r0 = &plane[2 * oy * stride_in..][..2 * p.ow];
            let r1 = &plane[(2 * oy + 1) * stride_in..][..2 * p.ow];
            for ((o, a), b) in orow
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *o = f(max_sel(max_sel(max_sel(a[0], a[1]), b[0]), b[1]));
            }
        }
        return;
    }
    for (oy, orow) in out.chunks_exact_mut(p.ow).enumerate() {
        for (ox, o) in orow.iter_mut().enumerate() {
            *o = f(window_max(
                plane,
                stride_in,
                oy * p.s * stride_in + ox * p.s,
                p.k,
            ));
        }
    }
}

/// `y [C, OH, OW] = max_pool(x [C, H, W])`.
pub fn max_pool(p: &Pool, x: &[f32], y: &mut [f32]) {
    for (plane, out) in x
        .chunks_exact(p.h * p.w)
        .zip(y.chunks_exact_mut(p.oh * p.ow))
    {
        max_pool_plane(plane, p.w, p, out, |v| v);
    }
}

/// `dx += d max_pool / dx . dy`: each output gradient goes to its window's first maximum.
pub fn max_pool_input_grad(p: &Pool, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    for ((plane, d), g) in x
        .chunks_exact(hw)
        .zip(dy.chunks_exact(ohw))
        .zip(dx.chunks_exact_mut(hw))
    {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let base = oy * p.s * p.w + ox * p.s;
                let (mut m, mut at) = (plane[base], base);
                for ki in 0..p.k {
                    for kj in 0..p.k {
                        let i = base + ki * p.w + kj;
                        if plane[i] > m {
                            (m, at) = (plane[i], i);
                        }
                    }
                }
                g[at] += d[oy * p.ow + ox];
            }
        }
    }
}

/// `y [C, OH, OW] = avg_pool(x [C, H, W])`.
pub fn avg_pool(p: &Pool, x: &[f32], y: &mut [f32]) {
    let inv = 1.0 / (p.k * p.k) as f32;
    for (plane, out) in x
        .chunks_exact(p.h * p.w)
        .zip(y.chunks_exact_mut(p.oh * p.ow))
    {
        for (oy, orow) in out.chunks_exact_mut(p.ow).enumerate() {
            for (ox, o) in orow.iter_mut().enumerate() {
                let base = oy * p.s * p.w + ox * p.s;
                let mut sum = 0.0;
                for ki in 0..p.k {
                    sum += plane[base + ki * p.w..][..p.k].iter().sum::<f32>();
                }
                *o = sum * inv;
            }
        }
    }
}

/// `dx += d avg_pool / dx . dy`.
pub fn avg_pool_input_grad(p: &Pool, dy: &[f32], dx: &mut [f32]) {
    let inv = 1.0 / (p.k * p.k) as f32;
    for (d, g) in dy
        .chunks_exact(p.oh * p.ow)
        .zip(dx.chunks_exact_mut(p.h * p.w))
    {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let v = d[oy * p.ow + ox] * inv;
                let base = oy * p.s * p.w + ox * p.s;
                for ki in 0..p.k {
                    g[base + ki * p.w..][..p.k].iter_mut().for_each(|x| *x += v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::tests::{close, sparse_vec};
    use proptest::prelude::*;
    use rcc_tensor::ops::max_pool2d::PoolGeom;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Against the engine's kernels, forward and backward.
        #[test]
        fn matches_engine(c in 1usize..4, h in 1usize..13, w in 1usize..13, k in 1usize..4,
                          s in 1usize..4, zeros in 0.0f64..0.6, seed in 0u64..1000) {
            prop_assume!(h >= k && w >= k);
            let p = Pool::new([c, h, w], k, s);
            // Exact zeros make ties, as after a ReLU.
            let x = sparse_vec(p.in_len(), zeros, seed);
            let dy = sparse_vec(p.out_len(), 0.0, seed + 1);
            let g = PoolGeom::new("pool", &[1, c, h, w], k, s).unwrap();
            let (want, arg) = rcc_tensor::ops::max_pool2d::forward(&g, &x);
            let mut y = vec![f32::NAN; p.out_len()];
            max_pool(&p, &x, &mut y);
            prop_assert_eq!(&y, &want);
            let mut dx = vec![0.0; p.in_len()];
            max_pool_input_grad(&p, &x, &dy, &mut dx);
            let mut want_dx = vec![0.0; p.in_len()];
            for (i, &a) in arg.iter().enumerate() {
                want_dx[(i / (p.oh * p.ow)) * h * w + a as usize] += dy[i];
            }
            prop_assert!(close(&dx, &want_dx, 1e-6));

            let want = rcc_tensor::ops::avg_pool2d::forward(&g, &x);
            avg_pool(&p, &x, &mut y);
            prop_assert!(close(&y, &want, 1e-6));
            let mut dx = vec![0.0; p.in_len()];
            avg_pool_input_grad(&p, &dy, &mut dx);
            let mut want_dx = vec![0.0; p.in_len()];
            rcc_tensor::ops::avg_pool2d::backward_input(&g, &dy, &mut want_dx);
            prop_assert!(close(&dx, &want_dx, 1e-6));
        }
    }
}
