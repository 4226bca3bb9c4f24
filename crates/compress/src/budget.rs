//! The target budget of method.md section 2: how many weights each pruned tensor keeps
//! so that the whole network reaches a compression rate exactly ("per-layer or global
//! budgets are both options").

use crate::error::{assert_len, Error, Result};
use crate::prox::global_top_k_counts;
use crate::prunable::Prunable;

/// How a target count is shared among the pruned tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Every tensor is pruned to (about) the same rate; the counts do not depend on the
    /// weights. Ye et al.'s ADMM baseline prunes this way.
    PerLayer,
    /// One l0 ball over all pruned tensors: the largest magnitudes anywhere survive.
    /// The counts depend on the weights they are computed from; the [`crate::Compressor`]
    /// computes them once, from the model it starts from, and every prox step then meets
    /// them per tensor (so runs from one teacher share one per-layer split whatever the
    /// method).
    Global,
}

impl Budget {
    /// Weights each group keeps at `rate`; they sum to exactly K = round(total / rate).
    ///
    /// - `PerLayer`: group l gets its proportional share n_l K / total, rounded by the
    ///   largest-remainder method (Hamilton's: floors first, the K - sum of floors
    ///   leftover slots to the largest fractional parts, lower index first on a tie), so
    ///   each is round(n_l / rate) up to one; then every group keeps at least one weight
    ///   (a layer with none disconnects the network), taken from the largest count.
    ///   Needs K >= number of groups. `params` is not read.
    /// - `Global`: the counts of [`crate::prox::keep_top_k_global`] on `params`, so that
    ///   [`crate::prox::keep_top_k`] per group with them is the global projection. A
    ///   group can get 0 here; the trainer should check. Needs K >= 1.
    pub fn keep_counts(
        &self,
        prunable: &Prunable,
        params: &[f32],
        rate: f64,
    ) -> Result<Vec<usize>> {
        let keep = prunable.target_count(rate)?;
        match self {
            Budget::PerLayer => {
                let sizes: Vec<usize> = prunable.groups.iter().map(|g| g.len()).collect();
                if keep < sizes.len() {
                    return Err(Error::TooFewWeights {
                        rate,
                        keep,
                        min: sizes.len(),
                    });
                }
                Ok(apportion(&sizes, keep))
            }
            Budget::Global => {
                if keep == 0 {
                    return Err(Error::TooFewWeights { rate, keep, min: 1 });
                }
                assert_len("parameters", prunable.param_len, params.len());
                Ok(global_top_k_counts(params, &prunable.groups, keep))
            }
        }
    }
}

/// Shares `keep` slots (sizes.len() <= keep <= sum of sizes) among groups of `sizes` in
/// proportion, exactly, each getting at least one: the largest-remainder method in
/// integer arithmetic (no float rounding can break the total).
fn apportion(sizes: &[usize], keep: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    debug_assert!(sizes.len() <= keep && keep <= total);
    let share = |n: usize| (n as u128 * keep as u128 / total as u128) as usize;
    let remainder = |n: usize| n as u128 * keep as u128 % total as u128;
    let mut counts: Vec<usize> = sizes.iter().map(|&n| share(n)).collect();
    let leftover = keep - counts.iter().sum::<usize>();
    // Fractional parts sum to `leftover` and each is < 1, so only groups with a
    // non-zero remainder are picked, and none exceeds its size.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| {
        remainder(sizes[b])
            .cmp(&remainder(sizes[a]))
            .then(a.cmp(&b))
    });
    for &i in &order[..leftover] {
        counts[i] += 1;
    }
    // The floor of one: since keep >= the number of groups, while some group has 0
    // another has at least 2 to give.
    while let Some(empty) = counts.iter().position(|&c| c == 0) {
        let donor = (0..counts.len())
            .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
            .expect("at least one group");
        counts[donor] -= 1;
        counts[empty] = 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prox::{keep_top_k, keep_top_k_global};
    use crate::prunable::Group;
    use proptest::prelude::*;

    fn prunable(sizes: &[usize]) -> Prunable {
        let mut start = 0;
        let groups = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let g = Group {
                    name: format!("g{i}"),
                    range: start..start + n,
                    shape: vec![n],
                };
                start += n;
                g
            })
            .collect();
        Prunable::new(groups, start).unwrap()
    }

    #[test]
    fn per_layer_hand_case() {
        let p = prunable(&[200, 3200, 200_704, 2560]); // lenet_adv:4
        let counts = Budget::PerLayer.keep_counts(&p, &[], 16.0).unwrap();
        // K = round(206664 / 16) = 12917; shares 12.5, 200, 12544, 160 -> 13, 200, 12544, 160.
        assert_eq!(counts, vec![13, 200, 12544, 160]);
    }

    #[test]
    fn per_layer_floor_of_one() {
        let p = prunable(&[1, 1, 1000]);
        // K = 10: shares 0.01, 0.01, 9.98 -> 0, 0, 10, then one each to the small ones.
        assert_eq!(
            Budget::PerLayer.keep_counts(&p, &[], 100.2).unwrap(),
            vec![1, 1, 8]
        );
        let err = Budget::PerLayer.keep_counts(&p, &[], 1000.0).unwrap_err();
        assert_eq!(
            err,
            Error::TooFewWeights {
                rate: 1000.0,
                keep: 1,
                min: 3
            }
        );
    }

    #[test]
    fn global_hand_case() {
        let p = prunable(&[3, 2]);
        let params = [0.1, -5.0, 2.0, -3.0, 0.3];
        // K = round(5 / 2.5) = 2: |-5| and |-3|.
        assert_eq!(
            Budget::Global.keep_counts(&p, &params, 2.5).unwrap(),
            vec![1, 1]
        );
        assert!(Budget::Global.keep_counts(&p, &params, 20.0).is_err());
        assert!(Budget::Global.keep_counts(&p, &params, 0.9).is_err());
    }

    proptest! {
        #[test]
        fn per_layer_counts_are_exact(
            sizes in prop::collection::vec(1usize..5000, 1..8),
            rate in 1.0f64..200.0,
        ) {
            let p = prunable(&sizes);
            let keep = p.target_count(rate).unwrap();
            match Budget::PerLayer.keep_counts(&p, &[], rate) {
                Ok(counts) => {
                    prop_assert_eq!(counts.iter().sum::<usize>(), keep);
                    for (&c, &n) in counts.iter().zip(&sizes) {
                        prop_assert!(c >= 1 && c <= n);
                        // Proportional up to the rounding and the floor of one.
                        let share = n as f64 * keep as f64 / p.total() as f64;
                        prop_assert!(c == 1 || (c as f64 - share).abs() < 1.0 + sizes.len() as f64);
                    }
                }
                Err(e) => prop_assert!(keep < sizes.len(), "{}", e),
            }
        }

        #[test]
        fn global_counts_are_exact_and_match_the_projection(
            sizes in prop::collection::vec(1usize..300, 1..6),
            rate in 1.0f64..50.0,
            seed in any::<u64>(),
        ) {
            let p = prunable(&sizes);
            // Coarse values, so that magnitudes tie across groups.
            let mut s = seed | 1;
            let params: Vec<f32> = (0..p.param_len)
                .map(|_| {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    (s % 21) as f32 - 10.0
                })
                .collect();
            let keep = p.target_count(rate).unwrap();
            let Ok(counts) = Budget::Global.keep_counts(&p, &params, rate) else {
                prop_assert_eq!(keep, 0);
                return Ok(());
            };
            prop_assert_eq!(counts.iter().sum::<usize>(), keep);
            let mut global = params.clone();
            keep_top_k_global(&mut global, &p.groups, keep);
            let mut per_group = params.clone();
            for (g, &c) in p.groups.iter().zip(&counts) {
                keep_top_k(&mut per_group[g.range.clone()], c);
            }
            prop_assert_eq!(global, per_group);
        }
    }
}
