//! ReLU: `y = max(x, 0)`, with `relu'(0) = 0` as in PyTorch. The backward reads the
//! output (y > 0 exactly when x > 0), so it needs no saved mask.

use crate::error::Result;
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

pub(crate) struct Saved {
    x: Var,
}

const CHUNK: usize = 1 << 14;

/// Forward kernel, in place.
pub fn forward_inplace(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            *v = v.max(0.0);
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
    use crate::testing::{away_from_zero, check_grads};

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
