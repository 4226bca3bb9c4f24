//! The direct path for stride 1 (`kernels::direct_conv`): no patch matrix, the kernels
//! read the zero-padded input; the input gradient is the same kernel on the padded
//! output gradient with the adjoint weights.

use super::im2col::{add_partials, backward_im2col, dx_chunks, forward_im2col, Partial};
use super::{Conv2dGeom, ConvGrads};
use crate::kernels::direct_conv as direct;
use crate::kernels::Isa;
use crate::scratch;
use rayon::prelude::*;

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
