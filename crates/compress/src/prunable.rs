//! The prunable set of method.md section 1: the weight tensors of every conv and linear
//! layer (not biases, not batch norm), as ranges of the model's one parameter buffer,
//! and the compression rate of section 2 measured over them.

use crate::error::{assert_len, Error, Result};
use rcc_nn::layers::Layer;
use rcc_nn::Network;
use std::fmt;
use std::ops::Range;

/// One pruned tensor: where it lives in the parameter buffer and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// PyTorch's parameter name, e.g. `conv1.weight`.
    pub name: String,
    pub range: Range<usize>,
    pub shape: Vec<usize>,
}

impl Group {
    pub fn len(&self) -> usize {
        self.range.len()
    }
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
    /// Values per output channel (conv) or output feature (linear): the group length
    /// of [`crate::prox::group_l2`] for filter sparsity.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// The pruned tensors of a network, in layer order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prunable {
    pub groups: Vec<Group>,
    /// Length of the whole parameter buffer (pruned or not) the ranges index into.
    pub param_len: usize,
}

/// Non-zero count of one pruned tensor (see [`Prunable::report`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupNnz {
    pub name: String,
    pub len: usize,
    pub nnz: usize,
}

impl GroupNnz {
    /// len / nnz, infinite for an all-zero tensor.
    pub fn rate(&self) -> f64 {
        rate(self.len, self.nnz)
    }
}

impl fmt::Display for GroupNnz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} non-zero ({:.1}x)",
            self.name,
            self.nnz,
            self.len,
            self.rate()
        )
    }
}

/// Compression rate as method.md section 2 defines it: total / non-zero.
pub fn rate(total: usize, nnz: usize) -> f64 {
    if nnz == 0 {
        f64::INFINITY
    } else {
        total as f64 / nnz as f64
    }
}

fn nnz(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x != 0.0).count()
}

impl Prunable {
    /// The weight of every Conv2d and Linear layer of `net`.
    pub fn of(net: &Network) -> Prunable {
        let groups = net
            .layers
            .iter()
            .filter_map(|layer| match *layer {
                Layer::Conv2d { weight, .. } | Layer::Linear { weight, .. } => {
                    let view = net.params.view(weight);
                    Some(Group {
                        name: view.name.clone(),
                        range: view.range(),
                        shape: view.shape.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        Prunable {
            groups,
            param_len: net.params.len(),
        }
    }

    /// Groups given by hand (tests, custom models): each must lie inside the buffer,
    /// match its shape, be non-empty and not overlap another.
    pub fn new(groups: Vec<Group>, param_len: usize) -> Result<Prunable> {
        let err = |g: &Group, problem: String| Error::Group {
            name: g.name.clone(),
            problem,
        };
        for (i, g) in groups.iter().enumerate() {
            if g.range.is_empty() || g.range.end > param_len {
                return Err(err(
                    g,
                    format!(
                        "range {:?} must be non-empty and inside the {param_len} parameters",
                        g.range
                    ),
                ));
            }
            if g.shape.iter().product::<usize>() != g.len() {
                return Err(err(
                    g,
                    format!("shape {:?} does not hold {} values", g.shape, g.len()),
                ));
            }
            if let Some(o) = groups[..i]
                .iter()
                .find(|o| o.range.start < g.range.end && g.range.start < o.range.end)
            {
                return Err(err(g, format!("overlaps {}", o.name)));
            }
        }
        Ok(Prunable { groups, param_len })
    }

    /// Number of prunable weights.
    pub fn total(&self) -> usize {
        self.groups.iter().map(Group::len).sum()
    }

    /// Non-zero prunable weights in `params`.
    ///
    /// # Panics
    /// If `params` is not `param_len` long.
    pub fn nnz(&self, params: &[f32]) -> usize {
        assert_len("parameters", self.param_len, params.len());
        self.groups
            .iter()
            .map(|g| nnz(&params[g.range.clone()]))
            .sum()
    }

    /// Compression rate of `params`: prunable / non-zero prunable (infinite if all are 0).
    pub fn rate(&self, params: &[f32]) -> f64 {
        rate(self.total(), self.nnz(params))
    }

    /// Sparsity = 1 - 1/rate: the fraction of prunable weights that are zero.
    pub fn sparsity(&self, params: &[f32]) -> f64 {
        1.0 - self.nnz(params) as f64 / self.total() as f64
    }

    /// Per-tensor non-zero counts, in layer order.
    pub fn report(&self, params: &[f32]) -> Vec<GroupNnz> {
        assert_len("parameters", self.param_len, params.len());
        self.groups
            .iter()
            .map(|g| GroupNnz {
                name: g.name.clone(),
                len: g.len(),
                nnz: nnz(&params[g.range.clone()]),
            })
            .collect()
    }

    /// The number of weights a budget keeps at `rate`: round(total / rate).
    pub fn target_count(&self, rate: f64) -> Result<usize> {
        if !(rate.is_finite() && rate >= 1.0) {
            return Err(Error::Rate { rate });
        }
        Ok((self.total() as f64 / rate).round() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, range: Range<usize>, shape: &[usize]) -> Group {
        Group {
            name: name.into(),
            range,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn counts_and_rate() {
        let p = Prunable::new(vec![group("a", 0..4, &[2, 2]), group("b", 5..8, &[3])], 8).unwrap();
        // index 4 is a bias: its value must not count.
        let params = [1.0, 0.0, 0.0, 2.0, 9.0, 0.0, 0.0, -3.0];
        assert_eq!(p.total(), 7);
        assert_eq!(p.nnz(&params), 3);
        assert_eq!(p.rate(&params), 7.0 / 3.0);
        assert!((p.sparsity(&params) - 4.0 / 7.0).abs() < 1e-12);
        let r = p.report(&params);
        assert_eq!((r[0].len, r[0].nnz, r[1].len, r[1].nnz), (4, 2, 3, 1));
        assert_eq!(r[1].to_string(), "b 1/3 non-zero (3.0x)");
        assert_eq!(p.rate(&[0.0; 8]), f64::INFINITY);
    }

    #[test]
    fn new_rejects_bad_groups() {
        let overlap = Prunable::new(vec![group("a", 0..4, &[4]), group("b", 3..5, &[2])], 8);
        assert!(matches!(overlap, Err(Error::Group { ref name, .. }) if name == "b"));
        assert!(Prunable::new(vec![group("a", 0..4, &[3])], 8).is_err());
        assert!(Prunable::new(vec![group("a", 6..10, &[4])], 8).is_err());
        assert!(Prunable::new(vec![group("a", 2..2, &[0])], 8).is_err());
    }

    #[test]
    fn target_count_rounds_and_checks_the_rate() {
        let p = Prunable::new(vec![group("a", 0..10, &[10])], 10).unwrap();
        assert_eq!(p.target_count(4.0), Ok(3)); // 2.5 rounds away from zero
        assert_eq!(p.target_count(1.0), Ok(10));
        for bad in [0.5, f64::NAN, f64::INFINITY, -2.0] {
            assert!(matches!(p.target_count(bad), Err(Error::Rate { .. })));
        }
    }
}
