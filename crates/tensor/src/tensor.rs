//! `Tensor`: an owned, contiguous, row-major f32 array (images are NCHW).

use crate::error::{invalid, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A tensor from a shape and its row-major data; the lengths must agree.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or(crate::Error::Invalid {
                op: "Tensor::new",
                problem: format!("shape {shape:?} overflows"),
            })?;
        if n != data.len() {
            return invalid(
                "Tensor::new",
                format!(
                    "shape {shape:?} needs {n} elements, data has {}",
                    data.len()
                ),
            );
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; numel(shape)],
        }
    }

    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; numel(shape)],
        }
    }

    pub fn scalar(value: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![value],
        }
    }

    /// Element i (in row-major order) is `f(i)`.
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> f32) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: (0..numel(shape)).map(f).collect(),
        }
    }

    /// Uniform random values in [lo, hi), from a seeded generator.
    pub fn rand_uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut impl rand::Rng) -> Tensor {
        Tensor::from_fn(shape, |_| rng.gen_range(lo..hi))
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Tensor> {
        Tensor::new(shape, self.data)
    }

    /// Index of the largest value of each row of a `[N, K]` tensor (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let k = *self.shape.last().unwrap_or(&1);
        if k == 0 {
            return vec![];
        }
        self.data
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best
            })
            .collect()
    }
}
