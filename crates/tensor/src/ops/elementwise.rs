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
    use super::BinaryOp::{self, *};
    use crate::testing::{check_grads, f32s, grad_of, prop_close, rand_in, rand_tensor, strides};
    use crate::{Mode, Tape, Tensor};
    use proptest::prelude::*;

    /// NumPy's broadcast rule, written out: align at the right, pad with 1s; each pair of
    /// dimensions must be equal or contain a 1 (and then takes the other).
    fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
        let rank = a.len().max(b.len());
        let dim = |s: &[usize], d: usize| {
            if d + s.len() >= rank {
                s[d + s.len() - rank]
            } else {
                1
            }
        };
        (0..rank)
            .map(|d| match (dim(a, d), dim(b, d)) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            })
            .collect()
    }

    /// The flat index into an operand of shape `s` of the output multi-index `idx`
    /// (the operand's dimensions are aligned with the last ones of `idx`; size-1
    /// dimensions are broadcast, so their index is 0).
    fn operand_index(s: &[usize], idx: &[usize]) -> usize {
        let off = idx.len() - s.len();
        let st = strides(s);
        (0..s.len())
            .map(|j| if s[j] == 1 { 0 } else { idx[off + j] * st[j] })
            .sum()
    }

    /// Naive f64 reference: the output, and the gradients of `sum(out * dy)` with respect
    /// to both operands (each summed over the output positions that read it).
    #[allow(clippy::type_complexity)]
    fn naive(
        op: BinaryOp,
        a: &Tensor,
        b: &Tensor,
        out: &[usize],
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n: usize = out.iter().product();
        let st = strides(out);
        let (mut y, mut da, mut db) = (vec![0f64; n], vec![0f64; a.numel()], vec![0f64; b.numel()]);
        for i in 0..n {
            let idx: Vec<usize> = (0..out.len()).map(|d| (i / st[d]) % out[d]).collect();
            let (ia, ib) = (
                operand_index(a.shape(), &idx),
                operand_index(b.shape(), &idx),
            );
            let (x, z, g) = (a.data()[ia] as f64, b.data()[ib] as f64, dy[i] as f64);
            let (v, dx, dz) = match op {
                Add => (x + z, 1.0, 1.0),
                Sub => (x - z, 1.0, -1.0),
                Mul => (x * z, z, x),
                Div => (x / z, 1.0 / z, -x / (z * z)),
            };
            y[i] = v;
            da[ia] += g * dx;
            db[ib] += g * dz;
        }
        (y, da, db)
    }

    /// A size: mostly 1..5, sometimes 0 (an empty tensor).
    fn dim() -> impl Strategy<Value = usize> {
        prop_oneof![11 => 1usize..5, 1 => Just(0usize)]
    }

    /// Two broadcastable shapes: a full shape of rank 0..4, and operands derived from it
    /// by setting some dimensions to 1 and dropping some leading ones (one operand, the
    /// other or both).
    fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (
            prop::collection::vec(dim(), 0..=4),
            0u8..3,
            any::<[bool; 4]>(),
            any::<[bool; 4]>(),
            0usize..5,
            0usize..5,
        )
            .prop_map(|(full, which, ones_a, ones_b, drop_a, drop_b)| {
                let derive = |ones: [bool; 4], drop: usize| -> Vec<usize> {
                    let drop = drop.min(full.len());
                    (drop..full.len())
                        .map(|d| if ones[d] { 1 } else { full[d] })
                        .collect()
                };
                match which {
                    0 => (full.clone(), derive(ones_b, drop_b)),
                    1 => (derive(ones_a, drop_a), full.clone()),
                    _ => (derive(ones_a, drop_a), derive(ones_b, drop_b)),
                }
            })
    }

    /// The tape's forward and backward of `op` against [`naive`].
    fn matches_naive(
        op: BinaryOp,
        sa: &[usize],
        sb: &[usize],
        rg: (bool, bool),
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let a = rand_in(sa, seed, -2.0, 2.0);
        let b = if op == Div {
            // Divisors in [-2, -0.5] u [0.5, 2].
            let m = rand_in(sb, seed + 1, 0.5, 2.0);
            let sign = rand_in(sb, seed + 2, -1.0, 1.0);
            Tensor::from_fn(sb, |i| m.data()[i].copysign(sign.data()[i]))
        } else {
            rand_in(sb, seed + 1, -2.0, 2.0)
        };
        let out = broadcast_shape(sa, sb).expect("the strategy gives broadcastable shapes");
        let mut t = Tape::new(&[], Mode::InputGrad);
        let (av, bv) = (t.input(a.clone(), rg.0), t.input(b.clone(), rg.1));
        let y = t
            .binary(op, av, bv)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.shape(y), &out[..], "{:?} {:?} {:?}", op, sa, sb);
        let dy = rand_in(&out, seed + 3, -1.0, 1.0).into_data();
        let (y_ref, da_ref, db_ref) = naive(op, &a, &b, &out, &dy);
        let what = |q: &str| format!("{q} of {op:?} {sa:?} {sb:?} seed {seed}");
        prop_close(&what("y"), t.value(y), &f32s(&y_ref), 1e-5)?;
        let grads = t.backward_seeded(y, &dy, None).unwrap();
        for (v, rg, want, name) in [(av, rg.0, &da_ref, "da"), (bv, rg.1, &db_ref, "db")] {
            if rg {
                prop_close(
                    &what(name),
                    &grad_of(&grads, v, &what(name))?,
                    &f32s(want),
                    1e-4,
                )?;
            } else {
                prop_assert!(
                    grads.get(v).is_none(),
                    "{}: unexpected gradient",
                    what(name)
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn forward_and_backward_match_naive(
            (sa, sb) in shape_pair(),
            rg_a in prop::bool::weighted(0.85),
            rg_b in prop::bool::weighted(0.85),
            seed in 0u64..1000,
        ) {
            for op in [Add, Sub, Mul, Div] {
                matches_naive(op, &sa, &sb, (rg_a, rg_b), seed)?;
            }
        }

        /// Independent random shapes: the op succeeds exactly when NumPy's rule says the
        /// shapes broadcast, and then matches the naive reference.
        #[test]
        fn broadcasts_exactly_when_numpy_does(
            sa in prop::collection::vec(1usize..4, 0..=3),
            sb in prop::collection::vec(1usize..4, 0..=3),
            seed in 0u64..1000,
        ) {
            let mut t = Tape::new(&[], Mode::InputGrad);
            let av = t.input(rand_tensor(&sa, seed), true);
            let bv = t.input(rand_tensor(&sb, seed + 1), true);
            let ok = t.add(av, bv).is_ok();
            prop_assert_eq!(ok, broadcast_shape(&sa, &sb).is_some(), "{:?} {:?}", sa, sb);
            if ok {
                matches_naive(Mul, &sa, &sb, (true, true), seed)?;
            }
        }
    }

    /// The same variable on both sides: the two local gradients add up.
    #[test]
    fn same_operand_on_both_sides() {
        let x = rand_in(&[3, 4], 5, 0.5, 2.0);
        let mut t = Tape::new(&[], Mode::InputGrad);
        let xv = t.input(x.clone(), true);
        for (op, want) in [
            (Mul, x.data().iter().map(|v| 2.0 * v).collect::<Vec<_>>()),
            (Add, vec![2.0; 12]),
            (Sub, vec![0.0; 12]),
            (Div, vec![0.0; 12]),
        ] {
            let y = t.binary(op, xv, xv).unwrap();
            let g = t.backward_seeded(y, &[1.0; 12], None).unwrap();
            assert!(
                crate::testing::close(g.get(xv).unwrap(), &want, 1e-6),
                "{op:?}"
            );
        }
    }

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
