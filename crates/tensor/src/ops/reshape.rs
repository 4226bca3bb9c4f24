//! Reshape and flatten: the same row-major data under a new shape; the gradient is the
//! output gradient, reshaped back.

use crate::error::{shape_err, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use crate::tensor::numel;

pub(crate) struct Saved {
    x: Var,
}

impl Tape<'_> {
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        if numel(shape) != numel(self.shape(x)) {
            return shape_err(
                "reshape",
                format!("{} elements", numel(self.shape(x))),
                shape,
            );
        }
        let y = self.value(x).to_vec();
        Ok(self.record("reshape", shape.to_vec(), y, &[x], || {
            Op::Reshape(Saved { x })
        }))
    }

    /// `[N, ...] -> [N, prod(...)]`, row-major over (C, H, W) as PyTorch's `flatten(1)`.
    pub fn flatten(&mut self, x: Var) -> Result<Var> {
        let s = self.shape(x);
        if s.is_empty() {
            return shape_err("flatten", "at least one dimension", s);
        }
        let shape = [s[0], numel(&s[1..])];
        self.reshape(x, &shape)
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    if v.requires_grad(s.x) {
        for (d, y) in g.acc(s.x).iter_mut().zip(dy) {
            *d += y;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grads, grad_of, rand_tensor};
    use crate::{Mode, Tape};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// `x -> reshape(target) -> flatten`, with `target` a shuffle of x's dimensions
        /// plus some inserted 1s: the shapes are as PyTorch gives them, the values are
        /// x's data unchanged, and the gradient is dy's data unchanged.
        #[test]
        fn forward_and_backward_match_naive(
            (shape, target) in prop::collection::vec(1usize..6, 1..=4).prop_flat_map(|s| {
                let dims = prop::collection::vec(prop_oneof![3 => Just(None), 1 => Just(Some(1usize))], 0..3);
                (Just(s.clone()), (Just(s).prop_shuffle(), dims).prop_map(|(mut t, ones)| {
                    for (i, o) in ones.into_iter().enumerate() {
                        if let Some(one) = o {
                            t.insert(i.min(t.len()), one);
                        }
                    }
                    t
                }))
            }),
            seed in 0u64..1000,
        ) {
            let x = rand_tensor(&shape, seed);
            let mut t = Tape::new(&[], Mode::InputGrad);
            let xv = t.input(x.clone(), true);
            let r = t.reshape(xv, &target).unwrap();
            prop_assert_eq!(t.shape(r), &target[..]);
            let f = t.flatten(r).unwrap();
            let rest: usize = target[1..].iter().product();
            prop_assert_eq!(t.shape(f), &[target[0], rest]);
            prop_assert_eq!(t.value(r), x.data());
            prop_assert_eq!(t.value(f), x.data());
            let dy = rand_tensor(t.shape(f), seed + 1).into_data();
            let grads = t.backward_seeded(f, &dy, None).unwrap();
            prop_assert_eq!(grad_of(&grads, xv, "dx")?, dy);
        }
    }

    #[test]
    fn flatten_of_a_scalar_is_an_error() {
        let mut t = crate::Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(crate::Tensor::scalar(1.0), false);
        assert!(t.flatten(x).is_err());
        let y = t.reshape(x, &[1, 1]).unwrap();
        assert_eq!(t.shape(y), &[1, 1]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_grads(&[rand_tensor(&[2, 3, 2, 2], 1)], |t, v| t.flatten(v[0]));
    }

    #[test]
    fn wrong_element_count_is_an_error() {
        let mut t = crate::Tape::new(&[], crate::Mode::InputGrad);
        let x = t.input(rand_tensor(&[2, 3], 0), false);
        assert!(t.reshape(x, &[5]).is_err());
        let y = t.reshape(x, &[3, 2]).unwrap();
        assert_eq!(t.shape(y), &[3, 2]);
    }
}
