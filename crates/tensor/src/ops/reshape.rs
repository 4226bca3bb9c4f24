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
    use crate::testing::{check_grads, rand_tensor};

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
