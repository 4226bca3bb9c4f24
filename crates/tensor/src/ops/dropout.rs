//! Inverted dropout: in training each element is zeroed with probability `p` and the
//! survivors are scaled by `1/(1-p)`, so inference is the identity. The backward
//! multiplies by the same saved mask.

use crate::error::{invalid, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rand::Rng;

pub(crate) struct Saved {
    x: Var,
    mask: Vec<f32>,
}

impl Tape<'_> {
    /// Dropout with probability `p`, the mask drawn from the caller's seeded `rng`.
    pub fn dropout(&mut self, x: Var, p: f32, rng: &mut (impl Rng + ?Sized)) -> Result<Var> {
        if !(0.0..1.0).contains(&p) {
            return invalid("dropout", format!("p must be in [0, 1), got {p}"));
        }
        let scale = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..self.value(x).len())
            .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
            .collect();
        let y = self
            .value(x)
            .iter()
            .zip(&mask)
            .map(|(a, m)| a * m)
            .collect();
        let shape = self.shape(x).to_vec();
        Ok(self.record("dropout", shape, y, &[x], || Op::Dropout(Saved { x, mask })))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], _v: Values, g: &mut GradStore) {
    for ((d, &gy), &m) in g.acc(s.x).iter_mut().zip(dy).zip(&s.mask) {
        *d += gy * m;
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, grad_of, rand_tensor};
    use crate::{Mode, Tape};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Random shapes and p: the mask is one draw of `rng.gen::<f32>()` per element in
        /// row-major order (dropped when below p, else scaled by 1/(1-p)); the same seed
        /// gives the same output; `y = x * mask` and `dx = dy * mask`, exactly.
        #[test]
        fn forward_and_backward_match_naive(
            shape in prop::collection::vec(1usize..7, 0..=4),
            p in prop_oneof![1 => Just(0.0f32), 4 => 0.0f32..0.95],
            seed in 0u64..1000,
        ) {
            let x = rand_tensor(&shape, seed);
            let dy = rand_tensor(&shape, seed + 1).into_data();
            let run = || {
                let mut t = Tape::new(&[], Mode::InputGrad);
                let xv = t.input(x.clone(), true);
                let y = t.dropout(xv, p, &mut rand::rngs::StdRng::seed_from_u64(seed + 2)).unwrap();
                let grads = t.backward_seeded(y, &dy, None).unwrap();
                (t.shape(y).to_vec(), t.value(y).to_vec(), grad_of(&grads, xv, "dx"))
            };
            let (ys, y, dx) = run();
            let dx = dx?;
            let (_, y2, _) = run();
            prop_assert_eq!(&ys, &shape);
            prop_assert_eq!(&y, &y2, "same seed, different output");
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 2);
            let scale = 1.0 / (1.0 - p);
            let mask: Vec<f32> = (0..x.numel())
                .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
                .collect();
            if p == 0.0 {
                prop_assert_eq!(&y, x.data(), "p = 0 is the identity");
            }
            for i in 0..x.numel() {
                prop_assert_eq!(y[i], x.data()[i] * mask[i], "y[{}]", i);
                prop_assert_eq!(dx[i], dy[i] * mask[i], "dx[{}]", i);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // The same seed each call gives the same mask, so the function is deterministic.
        check_grads(&[rand_tensor(&[4, 6], 1)], |t, v| {
            t.dropout(v[0], 0.3, &mut rand::rngs::StdRng::seed_from_u64(5))
        });
    }

    #[test]
    fn keeps_the_expected_fraction_and_scale() {
        let mut t = crate::Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(crate::Tensor::full(&[10000], 1.0), false);
        let y = t
            .dropout(x, 0.25, &mut rand::rngs::StdRng::seed_from_u64(1))
            .unwrap();
        let kept = t.value(y).iter().filter(|&&v| v != 0.0).count();
        assert!((7200..7800).contains(&kept), "{kept}");
        assert!(t
            .value(y)
            .iter()
            .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    }
}
