//! Naive reference kernels: direct loops, f64 accumulation.

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
