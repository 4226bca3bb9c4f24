//! Average pooling over `kernel x kernel` windows with a stride, no padding, floor mode.
//! Each input in a window gets `dy / kernel^2` back.

use crate::error::Result;
use crate::ops::max_pool2d::PoolGeom;
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

/// Forward kernel.
pub fn forward(g: &PoolGeom, x: &[f32]) -> Vec<f32> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    let mut y = crate::scratch::take(g.planes * ohw);
    if ohw == 0 {
        return y;
    }
    y.par_chunks_mut(ohw)
        .zip(x.par_chunks(hw))
        .for_each(|(yp, xp)| {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = 0.0;
                    for i in oy * g.stride..oy * g.stride + g.kernel {
                        let row = &xp[i * g.w + ox * g.stride..][..g.kernel];
                        s += row.iter().sum::<f32>();
                    }
                    yp[oy * g.ow + ox] = s * scale;
                }
            }
        });
    y
}

/// `dx += dy / kernel^2` over each window.
pub fn backward_input(g: &PoolGeom, dy: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    if ohw == 0 {
        return;
    }
    dx.par_chunks_mut(hw)
        .zip(dy.par_chunks(ohw))
        .for_each(|(dxp, dyp)| {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let d = dyp[oy * g.ow + ox] * scale;
                    for i in oy * g.stride..oy * g.stride + g.kernel {
                        for v in &mut dxp[i * g.w + ox * g.stride..][..g.kernel] {
                            *v += d;
                        }
                    }
                }
            }
        });
}

pub(crate) struct Saved {
    x: Var,
    geom: PoolGeom,
}

impl Tape<'_> {
    pub fn avg_pool2d(&mut self, x: Var, kernel: usize, stride: usize) -> Result<Var> {
        let g = PoolGeom::new("avg_pool2d", self.shape(x), kernel, stride)?;
        let y = forward(&g, self.value(x));
        let shape = g.out_shape(self.shape(x));
        Ok(self.record("avg_pool2d", shape, y, &[x], || {
            Op::AvgPool2d(Saved { x, geom: g })
        }))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], _v: Values, g: &mut GradStore) {
    backward_input(&s.geom, dy, g.acc(s.x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grads, close, rand_tensor};
    use proptest::prelude::*;

    fn naive(g: &PoolGeom, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.planes * g.oh * g.ow];
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = 0f64;
                    for i in 0..g.kernel {
                        for j in 0..g.kernel {
                            s += x[(p * g.h + oy * g.stride + i) * g.w + ox * g.stride + j] as f64;
                        }
                    }
                    y[(p * g.oh + oy) * g.ow + ox] = (s / (g.kernel * g.kernel) as f64) as f32;
                }
            }
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_naive(n in 1usize..3, c in 1usize..4, h in 1usize..13, w in 1usize..13,
                         kernel in 1usize..4, stride in 1usize..4, seed in 0u64..1000) {
            prop_assume!(h >= kernel && w >= kernel);
            let xs = [n, c, h, w];
            let g = PoolGeom::new("t", &xs, kernel, stride).unwrap();
            let x = rand_tensor(&xs, seed);
            prop_assert!(close(&forward(&g, x.data()), &naive(&g, x.data()), 1e-6));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grads(&[rand_tensor(&[2, 2, 5, 7], 3)], |t, v| {
            t.avg_pool2d(v[0], 3, 2)
        });
        check_grads(&[rand_tensor(&[1, 3, 4, 4], 4)], |t, v| {
            t.avg_pool2d(v[0], 2, 2)
        });
    }
}
