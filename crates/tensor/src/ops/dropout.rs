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
    pub fn dropout(&mut self, x: Var, p: f32, rng: &mut impl Rng) -> Result<Var> {
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
    use crate::testing::{check_grads, rand_tensor};
    use rand::SeedableRng;

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
