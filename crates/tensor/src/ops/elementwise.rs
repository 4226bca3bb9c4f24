//! Elementwise add, sub, mul, div with NumPy/PyTorch broadcasting (a bias `[F]` over
//! `[N, F]`, a per-channel `[C, 1, 1]` over `[N, C, H, W]`, a scalar, ...).
//!
//! Local derivatives, side by side with the forward:
//! `add: (1, 1)`, `sub: (1, -1)`, `mul: (b, a)`, `div: (1/b, -a/b^2)`.
//! Each operand's gradient is summed over the dimensions it was broadcast along.

use crate::error::{shape_err, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use crate::tensor::numel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    #[inline]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
    /// (d out/d a, d out/d b) at (a, b).
    #[inline]
    fn local_grads(self, a: f32, b: f32) -> (f32, f32) {
        match self {
            BinaryOp::Add => (1.0, 1.0),
            BinaryOp::Sub => (1.0, -1.0),
            BinaryOp::Mul => (b, a),
            BinaryOp::Div => (1.0 / b, -a / (b * b)),
        }
    }
}

pub(crate) struct Saved {
    op: BinaryOp,
    a: Var,
    b: Var,
    plan: Broadcast,
}

/// Output shape and each operand's strides over it (0 along broadcast dimensions).
#[derive(Clone, Debug)]
struct Broadcast {
    shape: Vec<usize>,
    sa: Vec<usize>,
    sb: Vec<usize>,
}

fn plan(a: &[usize], b: &[usize]) -> Result<Broadcast> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (pad(a), pad(b));
    let mut shape = Vec::with_capacity(rank);
    for (&x, &y) in pa.iter().zip(&pb) {
        shape.push(match (x, y) {
            _ if x == y => x,
            (1, _) => y,
            (_, 1) => x,
            _ => return shape_err("elementwise", "broadcastable shapes", (a, b)),
        });
    }
    let strides = |p: &[usize]| -> Vec<usize> {
        let mut st = vec![0; rank];
        let mut acc = 1;
        for d in (0..rank).rev() {
            st[d] = if p[d] == 1 { 0 } else { acc };
            acc *= p[d];
        }
        st
    };
    Ok(Broadcast {
        sa: strides(&pa),
        sb: strides(&pb),
        shape,
    })
}

/// Calls `f(i, ia, ib)` for every output index `i` and the operands' matching indices.
fn for_each_index(p: &Broadcast, mut f: impl FnMut(usize, usize, usize)) {
    let n = numel(&p.shape);
    if n == 0 {
        return;
    }
    let rank = p.shape.len();
    let mut idx = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for i in 0..n {
        f(i, ia, ib);
        // Odometer increment, updating operand offsets incrementally.
        for d in (0..rank).rev() {
            idx[d] += 1;
            ia += p.sa[d];
            ib += p.sb[d];
            if idx[d] < p.shape[d] {
                break;
            }
            ia -= p.sa[d] * idx[d];
            ib -= p.sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// Forward kernel: `op(a, b)` broadcast; returns the output shape and data.
pub fn forward(
    op: BinaryOp,
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
) -> Result<(Vec<usize>, Vec<f32>)> {
    if sa == sb {
        let y = a.iter().zip(b).map(|(&x, &y)| op.apply(x, y)).collect();
        return Ok((sa.to_vec(), y));
    }
    let p = plan(sa, sb)?;
    let mut y = vec![0.0; numel(&p.shape)];
    for_each_index(&p, |i, ia, ib| y[i] = op.apply(a[ia], b[ib]));
    Ok((p.shape, y))
}

impl Tape<'_> {
    pub fn binary(&mut self, op: BinaryOp, a: Var, b: Var) -> Result<Var> {
        let p = plan(self.shape(a), self.shape(b))?;
        let (shape, y) = forward(
            op,
            self.value(a),
            self.shape(a),
            self.value(b),
            self.shape(b),
        )?;
        Ok(self.record("binary", shape, y, &[a, b], || {
            Op::Binary(Saved { op, a, b, plan: p })
        }))
    }
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Add, a, b)
    }
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, a, b)
    }
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Div, a, b)
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let (a, b) = (v.get(s.a), v.get(s.b));
    // One pass per operand, so each accumulator is borrowed alone.
    if v.requires_grad(s.a) {
        let da = g.acc(s.a);
        for_each_index(&s.plan, |i, ia, ib| {
            da[ia] += dy[i] * s.op.local_grads(a[ia], b[ib]).0
        });
    }
    if v.requires_grad(s.b) {
        let db = g.acc(s.b);
        for_each_index(&s.plan, |i, ia, ib| {
            db[ib] += dy[i] * s.op.local_grads(a[ia], b[ib]).1
        });
    }
}

#[cfg(test)]
mod tests {
    use super::BinaryOp::*;
    use crate::testing::{check_grads, rand_tensor};
    use crate::Tensor;

    #[test]
    fn gradients_match_finite_differences_with_broadcasting() {
        for op in [Add, Sub, Mul, Div] {
            for (sa, sb) in [
                (vec![2, 3, 2, 2], vec![2, 3, 2, 2]),
                (vec![2, 3, 2, 2], vec![3, 1, 1]),
                (vec![4, 5], vec![5]),
                (vec![1, 5], vec![4, 1]),
                (vec![3], vec![]),
            ] {
                let a = rand_tensor(&sa, 1);
                // Keep divisors away from zero.
                let b = Tensor::from_fn(&sb, |i| 0.7 + 0.1 * (i % 7) as f32);
                check_grads(&[a, b], |t, v| t.binary(op, v[0], v[1]));
            }
        }
    }

    #[test]
    fn per_channel_broadcast_values() {
        let a = Tensor::from_fn(&[1, 2, 1, 2], |i| i as f32);
        let (shape, y) = super::forward(Add, a.data(), a.shape(), &[10., 20.], &[2, 1, 1]).unwrap();
        assert_eq!(shape, vec![1, 2, 1, 2]);
        assert_eq!(y, vec![10., 11., 22., 23.]);
    }

    #[test]
    fn incompatible_shapes_are_an_error() {
        assert!(super::forward(Add, &[0.; 6], &[2, 3], &[0.; 2], &[2]).is_err());
    }
}
