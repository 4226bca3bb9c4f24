//! The frozen zero pattern of method.md section 2, step 5 (debiasing) and of ADMM's
//! retraining (section 3): one bit per prunable weight, set = the weight may be non-zero.
//!
//! During masked fine-tuning, mask the gradient before the optimiser step *and* the
//! parameters after it: SGD momentum accumulated before the pattern was frozen would
//! otherwise move a pruned weight off zero.

use crate::error::{assert_len, check_len, Result};
use crate::prunable::Prunable;
use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// The prunable ranges of the parameter buffer; their values get bits in this order.
    ranges: Vec<Range<usize>>,
    param_len: usize,
    /// Bit j of the concatenation of the ranges, 64 to a word.
    bits: Vec<u64>,
    len: usize,
}

impl Mask {
    /// Keeps exactly the non-zero prunable weights of `params`.
    pub fn from_params(params: &[f32], prunable: &Prunable) -> Result<Mask> {
        check_len("parameters", prunable.param_len, params.len())?;
        let mut mask = Mask::dense(prunable);
        let mut j = 0;
        for r in &mask.ranges {
            for &x in &params[r.clone()] {
                if x == 0.0 {
                    mask.bits[j / 64] &= !(1 << (j % 64));
                }
                j += 1;
            }
        }
        Ok(mask)
    }

    /// Keeps every prunable weight.
    pub fn dense(prunable: &Prunable) -> Mask {
        let len = prunable.total();
        let mut bits = vec![u64::MAX; len.div_ceil(64)];
        if !len.is_multiple_of(64) {
            // Unused high bits stay clear, so popcount is the kept count.
            *bits.last_mut().expect("non-empty") = (1u64 << (len % 64)) - 1;
        }
        Mask {
            ranges: prunable.groups.iter().map(|g| g.range.clone()).collect(),
            param_len: prunable.param_len,
            bits,
            len,
        }
    }

    /// Whether the j-th prunable weight (counting through the groups in order) is kept.
    pub fn is_kept(&self, j: usize) -> bool {
        assert!(j < self.len, "mask index {j} out of {} weights", self.len);
        self.bits[j / 64] >> (j % 64) & 1 == 1
    }

    /// Zeroes the masked-out weights of `params`; values outside the prunable ranges
    /// (biases, batch norm) are left alone.
    ///
    /// # Panics
    /// If `params` is not as long as the buffer the mask was made for.
    pub fn apply(&self, params: &mut [f32]) {
        assert_len("parameters", self.param_len, params.len());
        self.zero_dropped(params);
    }

    /// Zeroes the gradient of every masked-out weight (the same operation as
    /// [`Mask::apply`], on the gradient buffer; also usable on optimiser state).
    ///
    /// # Panics
    /// If `grads` is not as long as the parameter buffer.
    pub fn apply_to_grad(&self, grads: &mut [f32]) {
        assert_len("gradients", self.param_len, grads.len());
        self.zero_dropped(grads);
    }

    fn zero_dropped(&self, buf: &mut [f32]) {
        let mut j = 0;
        for r in &self.ranges {
            for x in &mut buf[r.clone()] {
                if self.bits[j / 64] >> (j % 64) & 1 == 0 {
                    *x = 0.0;
                }
                j += 1;
            }
        }
    }

    /// Number of prunable weights (kept or not).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of kept weights.
    pub fn nnz(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Kept weights per group, in group order.
    pub fn group_nnz(&self) -> Vec<usize> {
        let mut j = 0;
        self.ranges
            .iter()
            .map(|r| {
                let kept = (j..j + r.len()).filter(|&i| self.is_kept(i)).count();
                j += r.len();
                kept
            })
            .collect()
    }

    /// Compression rate of the pattern: prunable / kept.
    pub fn rate(&self) -> f64 {
        crate::prunable::rate(self.len, self.nnz())
    }

    /// Memory of the bit set (for method.md's memory comparison).
    pub fn bytes(&self) -> usize {
        self.bits.len() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prunable::Group;

    fn prunable() -> Prunable {
        // [bias, a x 3, bias, b x 70]: b crosses a word boundary.
        let groups = vec![
            Group {
                name: "a".into(),
                range: 1..4,
                shape: vec![3],
            },
            Group {
                name: "b".into(),
                range: 5..75,
                shape: vec![70],
            },
        ];
        Prunable::new(groups, 75).unwrap()
    }

    #[test]
    fn from_params_then_apply() {
        let p = prunable();
        let mut w: Vec<f32> = (0..75).map(|i| i as f32 + 1.0).collect();
        w[2] = 0.0;
        w[70] = 0.0;
        w[4] = 0.0; // a bias at zero: not part of the mask
        let mask = Mask::from_params(&w, &p).unwrap();
        assert_eq!((mask.len(), mask.nnz()), (73, 71));
        assert_eq!(mask.group_nnz(), vec![2, 69]);
        assert!(!mask.is_kept(1) && mask.is_kept(0) && !mask.is_kept(3 + 65));
        assert_eq!(mask.bytes(), 16);
        assert!((mask.rate() - 73.0 / 71.0).abs() < 1e-12);

        let mut grads = vec![1.0f32; 75];
        mask.apply_to_grad(&mut grads);
        let zeroed: Vec<usize> = (0..75).filter(|&i| grads[i] == 0.0).collect();
        assert_eq!(zeroed, vec![2, 70]);

        let mut other = vec![5.0f32; 75];
        mask.apply(&mut other);
        assert_eq!(other.iter().filter(|&&x| x == 0.0).count(), 2);
        assert_eq!(Mask::dense(&p).nnz(), 73);
    }

    #[test]
    fn rejects_wrong_length() {
        assert!(Mask::from_params(&[1.0; 10], &prunable()).is_err());
    }

    #[test]
    #[should_panic(expected = "gradients: expected 75 values, got 74")]
    fn apply_to_grad_checks_length() {
        Mask::dense(&prunable()).apply_to_grad(&mut [0.0; 74]);
    }
}
