//! Reductions to a scalar: `sum` and `mean` of all elements. The derivative of each is a
//! constant (1 or 1/n) broadcast back over the input.

use crate::error::Result;
use crate::tape::{GradStore, Op, Tape, Values, Var};

pub(crate) struct Saved {
    x: Var,
    scale: f32,
}

/// Sum of all elements, accumulated in f64 (so it does not depend on blocking).
pub fn sum(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

impl Tape<'_> {
    pub fn sum(&mut self, x: Var) -> Result<Var> {
        self.reduce(x, 1.0)
    }

    pub fn mean(&mut self, x: Var) -> Result<Var> {
        let n = self.value(x).len().max(1);
        self.reduce(x, 1.0 / n as f32)
    }

    fn reduce(&mut self, x: Var, scale: f32) -> Result<Var> {
        let y = (self.value(x).iter().map(|&v| v as f64).sum::<f64>() * scale as f64) as f32;
        Ok(self.record("sum", vec![], vec![y], &[x], || Op::Sum(Saved { x, scale })))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let d = dy[0] * s.scale;
    if v.requires_grad(s.x) {
        for a in g.acc(s.x) {
            *a += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, grad_of, prop_close, rand_in, rand_tensor};
    use crate::{Mode, Tape};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Sum and mean of random shapes (rank 0..4, sometimes empty) against f64 loops;
        /// the gradient of `dl * sum(x)` is `dl` everywhere, of `dl * mean(x)` `dl / n`.
        #[test]
        fn forward_and_backward_match_naive(
            shape in prop::collection::vec(prop_oneof![12 => 1usize..7, 1 => Just(0usize)], 0..=4),
            mean: bool,
            dl in -2.0f32..2.0,
            seed in 0u64..1000,
        ) {
            let x = rand_in(&shape, seed, -3.0, 3.0);
            let n = x.numel();
            let mut t = Tape::new(&[], Mode::InputGrad);
            let xv = t.input(x.clone(), true);
            let y = if mean { t.mean(xv) } else { t.sum(xv) }.unwrap();
            prop_assert_eq!(t.shape(y), &[] as &[usize]);
            let grads = t.backward_seeded(y, &[dl], None).unwrap();
            let mut total = 0f64;
            for &v in x.data() {
                total += v as f64;
            }
            // The mean of nothing is 0 (as the sum), not NaN.
            let (y_ref, d) = if mean && n > 0 {
                (total / n as f64, dl as f64 / n as f64)
            } else {
                (total, dl as f64)
            };
            let what = |q: &str| format!("{q}: {shape:?} mean {mean} seed {seed}");
            prop_close(&what("y"), &[t.scalar(y)], &[y_ref as f32], 1e-5)?;
            prop_close(&what("dx"), &grad_of(&grads, xv, "dx")?, &vec![d as f32; n], 1e-5)?;
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grads(&[rand_tensor(&[4, 5], 1)], |t, v| t.sum(v[0]));
        check_grads(&[rand_tensor(&[4, 5], 2)], |t, v| t.mean(v[0]));
    }

    #[test]
    fn values() {
        let mut t = crate::Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(
            crate::Tensor::new(&[4], vec![1., 2., 3., 6.]).unwrap(),
            false,
        );
        let (s, m) = (t.sum(x).unwrap(), t.mean(x).unwrap());
        assert_eq!((t.scalar(s), t.scalar(m)), (12.0, 3.0));
    }
}
