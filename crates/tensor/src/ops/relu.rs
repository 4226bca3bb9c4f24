//! ReLU: `y = max(x, 0)`, with `relu'(0) = 0` as in PyTorch. The backward reads the
//! output (y > 0 exactly when x > 0), so it needs no saved mask.

use crate::error::Result;
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

pub(crate) struct Saved {
    x: Var,
}

const CHUNK: usize = 1 << 14;

/// `max(v, 0)`, but NaN stays NaN (as in PyTorch): `f32::max` would turn a diverged
/// activation into a silent 0.
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// Forward kernel, in place.
pub fn forward_inplace(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            *v = relu(*v);
        }
    });
}

impl Tape<'_> {
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        let mut y = crate::scratch::take(self.value(x).len());
        y.copy_from_slice(self.value(x));
        forward_inplace(&mut y);
        let shape = self.shape(x).to_vec();
        Ok(self.record("relu", shape, y, &[x], || Op::Relu(Saved { x })))
    }
}

pub(crate) fn backward(s: &Saved, out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let y = v.get(out);
    g.acc(s.x)
        .par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(dx, (dy, y))| {
            for ((d, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
                if y > 0.0 {
                    *d += g;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use crate::testing::{away_from_zero, check_grads, grad_of, rand_in, rand_tensor};
    use crate::{Mode, Tape, Tensor};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Random NCHW shapes, some above the kernel's parallel chunk (2^14), with exact
        /// zeros (both signs) sprinkled in: `y = x if x > 0 else 0` and
        /// `dx = dy if x > 0 else 0`, exactly (no arithmetic to round).
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, c in 1usize..6, h in 1usize..40, w in 1usize..40,
            seed in 0u64..1000,
        ) {
            let shape = [n, c, h, w];
            let r = rand_in(&shape, seed, -1.0, 1.0);
            let x = Tensor::from_fn(&shape, |i| match i % 17 {
                3 => 0.0,
                11 => -0.0,
                _ => r.data()[i],
            });
            let dy = rand_tensor(&shape, seed + 1).into_data();
            let mut t = Tape::new(&[], Mode::InputGrad);
            let xv = t.input(x.clone(), true);
            let y = t.relu(xv).unwrap();
            prop_assert_eq!(t.shape(y), &shape);
            let grads = t.backward_seeded(y, &dy, None).unwrap();
            let dx = grad_of(&grads, xv, "dx")?;
            for (i, &v) in x.data().iter().enumerate() {
                let (y_ref, dx_ref) = if v > 0.0 { (v, dy[i]) } else { (0.0, 0.0) };
                prop_assert_eq!(t.value(y)[i], y_ref, "y[{}] at x = {}", i, v);
                prop_assert_eq!(dx[i], dx_ref, "dx[{}] at x = {}", i, v);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Inputs kept away from the kink at 0, where the derivative is not defined.
        check_grads(&[away_from_zero(&[3, 11], 4, 0.05)], |t, v| t.relu(v[0]));
    }

    #[test]
    fn derivative_at_zero_is_zero() {
        let mut t = crate::Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(
            crate::Tensor::new(&[3], vec![-1.0, 0.0, 2.0]).unwrap(),
            true,
        );
        let y = t.relu(x).unwrap();
        let s = t.sum(y).unwrap();
        let g = t.backward(s, None).unwrap();
        assert_eq!(g.get(x).unwrap(), &[0.0, 0.0, 1.0]);
    }
}
