//! Max pooling over `kernel x kernel` windows with a stride, no padding, floor mode.
//!
//! The forward keeps each window's argmax (flat index `h*W + w` inside its plane, as
//! PyTorch's `return_indices=True`); the backward routes each output gradient to it, so
//! overlapping windows that share a maximum add up. Ties go to the first maximum in
//! row-major order (strict `>`), as PyTorch's CPU kernel.

use crate::error::{invalid, shape_err, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// `x [N, C, H, W]`; shared by max and average pooling.
    pub fn new(op: &'static str, x: &[usize], kernel: usize, stride: usize) -> Result<PoolGeom> {
        if x.len() != 4 {
            return shape_err(op, "x [N, C, H, W]", x);
        }
        if kernel == 0 || stride == 0 {
            return invalid(op, "kernel and stride must be at least 1");
        }
        if x[2] < kernel || x[3] < kernel {
            return shape_err(op, format!("input at least {kernel} x {kernel}"), x);
        }
        Ok(PoolGeom {
            planes: x[0] * x[1],
            h: x[2],
            w: x[3],
            kernel,
            stride,
            oh: (x[2] - kernel) / stride + 1,
            ow: (x[3] - kernel) / stride + 1,
        })
    }
    pub fn out_shape(&self, x: &[usize]) -> Vec<usize> {
        vec![x[0], x[1], self.oh, self.ow]
    }
}

/// Forward kernel: (output, argmax).
pub fn forward(g: &PoolGeom, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut y = crate::scratch::take(g.planes * ohw);
    let mut arg = crate::scratch::take_u32(g.planes * ohw);
    if ohw == 0 {
        return (y, arg);
    }
    y.par_chunks_mut(ohw)
        .zip(arg.par_chunks_mut(ohw))
        .zip(x.par_chunks(hw))
        .for_each(|((yp, ap), xp)| {
            if g.kernel == 2 && g.stride == 2 {
                pool2x2(g, xp, yp, ap)
            } else {
                pool_any(g, xp, yp, ap)
            }
        });
    (y, arg)
}

/// Any kernel and stride, one plane.
fn pool_any(g: &PoolGeom, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, x0) = (oy * g.stride, ox * g.stride);
            let mut best = y0 * g.w + x0;
            for i in y0..y0 + g.kernel {
                for j in x0..x0 + g.kernel {
                    if xp[i * g.w + j] > xp[best] {
                        best = i * g.w + j;
                    }
                }
            }
            yp[oy * g.ow + ox] = xp[best];
            ap[oy * g.ow + ox] = best as u32;
        }
    }
}

/// The models' 2x2 stride-2 pool, one plane: two input rows per output row, compared in
/// the same row-major order as [`pool_any`] (first maximum wins).
fn pool2x2(g: &PoolGeom, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    for (oy, (yr, ar)) in yp
        .chunks_exact_mut(g.ow)
        .zip(ap.chunks_exact_mut(g.ow))
        .enumerate()
    {
        let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
        let (top, bot) = (&xp[r0..r0 + g.w], &xp[r1..r1 + g.w]);
        for (ox, (yv, av)) in yr.iter_mut().zip(ar.iter_mut()).enumerate() {
            let j = 2 * ox;
            let (mut best, mut at) = (top[j], r0 + j);
            if top[j + 1] > best {
                (best, at) = (top[j + 1], r0 + j + 1);
            }
            if bot[j] > best {
                (best, at) = (bot[j], r1 + j);
            }
            if bot[j + 1] > best {
                (best, at) = (bot[j + 1], r1 + j + 1);
            }
            *yv = best;
            *av = at as u32;
        }
    }
}

/// Routes `dy` to the argmax positions: `dx[argmax] += dy`.
pub fn backward_input(g: &PoolGeom, dy: &[f32], arg: &[u32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    if ohw == 0 {
        return;
    }
    dx.par_chunks_mut(hw)
        .zip(dy.par_chunks(ohw).zip(arg.par_chunks(ohw)))
        .for_each(|(dxp, (dyp, ap))| {
            for (&d, &a) in dyp.iter().zip(ap) {
                dxp[a as usize] += d;
            }
        });
}

pub(crate) struct Saved {
    x: Var,
    geom: PoolGeom,
    argmax: Vec<u32>,
}

impl Drop for Saved {
    fn drop(&mut self) {
        crate::scratch::give_u32(std::mem::take(&mut self.argmax));
    }
}

impl Tape<'_> {
    pub fn max_pool2d(&mut self, x: Var, kernel: usize, stride: usize) -> Result<Var> {
        let g = PoolGeom::new("max_pool2d", self.shape(x), kernel, stride)?;
        let (y, argmax) = forward(&g, self.value(x));
        // Without a backward, the indices go straight back to the pool.
        let argmax = if self.requires_grad(x) {
            argmax
        } else {
            crate::scratch::give_u32(argmax);
            Vec::new()
        };
        let shape = g.out_shape(self.shape(x));
        Ok(self.record("max_pool2d", shape, y, &[x], || {
            Op::MaxPool2d(Saved { x, geom: g, argmax })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], _v: Values, g: &mut GradStore) {
    backward_input(&s.geom, dy, &s.argmax, g.acc(s.x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grads, close, distinct, rand_tensor};
    use proptest::prelude::*;

    /// Naive reference: max over each window by index arithmetic; gradient to the first max.
    fn naive(g: &PoolGeom, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut y = vec![f32::NEG_INFINITY; g.planes * g.oh * g.ow];
        let mut dx = vec![0.0; x.len()];
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let yi = (p * g.oh + oy) * g.ow + ox;
                    let mut bi = 0;
                    for i in 0..g.kernel {
                        for j in 0..g.kernel {
                            let xi = (p * g.h + oy * g.stride + i) * g.w + ox * g.stride + j;
                            if x[xi] > y[yi] {
                                y[yi] = x[xi];
                                bi = xi;
                            }
                        }
                    }
                    dx[bi] += dy[yi];
                }
            }
        }
        (y, dx)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_naive(n in 1usize..3, c in 1usize..4, h in 1usize..13, w in 1usize..13,
                         kernel in 1usize..4, stride in 1usize..4, seed in 0u64..1000) {
            prop_assume!(h >= kernel && w >= kernel);
            let xs = [n, c, h, w];
            let g = PoolGeom::new("t", &xs, kernel, stride).unwrap();
            let x = distinct(&xs, seed);
            let (y, arg) = forward(&g, x.data());
            let dy = rand_tensor(&g.out_shape(&xs), seed + 1).into_data();
            let mut dx = vec![0.0; x.numel()];
            backward_input(&g, &dy, &arg, &mut dx);
            let (y_ref, dx_ref) = naive(&g, x.data(), &dy);
            prop_assert_eq!(y, y_ref);
            prop_assert!(close(&dx, &dx_ref, 1e-6));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Distinct values (gaps 2/n, larger than the 1e-2 probe) keep each window's
        // argmax fixed under the perturbation.
        let x = distinct(&[2, 2, 5, 7], 3);
        let x = crate::Tensor::new(x.shape(), x.data().iter().map(|v| v * 10.0).collect()).unwrap();
        check_grads(&[x], |t, v| t.max_pool2d(v[0], 3, 2));
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        let g = PoolGeom::new("t", &[1, 1, 2, 2], 2, 2).unwrap();
        let (_, arg) = forward(&g, &[1.0, 3.0, 3.0, 3.0]);
        assert_eq!(arg, vec![1]);
        // The same in the generic kernel (3x3 window) and the 2x2 fast path with ties
        // everywhere (all zeros, as after a ReLU).
        let g = PoolGeom::new("t", &[1, 1, 3, 3], 3, 1).unwrap();
        assert_eq!(
            forward(&g, &[0., 2., 2., 0., 2., 0., 0., 0., 0.]).1,
            vec![1]
        );
        let g = PoolGeom::new("t", &[1, 1, 4, 4], 2, 2).unwrap();
        assert_eq!(forward(&g, &[0.0; 16]).1, vec![0, 2, 8, 10]);
    }
}
