//! The proximal operators of method.md section 2 (step 4: W = prox(V)), each in place
//! on a slice of the parameter buffer.
//!
//! - [`soft_threshold`]: prox of c ||v||_1 (the l1 regulariser R of section 1).
//! - [`keep_top_k`], [`keep_top_k_global`]: projection onto the l0 ball {||v||_0 <= k},
//!   the prox of the l0 budget's indicator (and ADMM's Proj_S, section 3).
//! - [`group_l2`]: prox of c sum_g ||v_g||_2 (filter sparsity, section 1's option).
//! - [`shrink_outside_top_k`]: prox of (c / 2) dist(v, {||v||_0 <= k})^2, the squared
//!   distance to the l0 ball: a soft form of the budget that pulls what the projection
//!   would cut towards zero, as ADMM's penalty does, without ADMM's Z and U.
//!
//! A NaN input stays NaN (it is never silently zeroed), so the trainer's divergence
//! check still sees it.

use crate::prunable::Group;
use std::cmp::Ordering;

/// Soft-thresholding S_c(v) = sign(v) max(|v| - c, 0), elementwise: the prox of
/// c ||v||_1 (method.md section 2, step 4, with c = lr * lambda_l).
///
/// # Panics
/// If `c` is negative or NaN.
pub fn soft_threshold(v: &mut [f32], c: f32) {
    assert!(c >= 0.0, "soft_threshold: threshold must be >= 0, got {c}");
    for x in v {
        let shrunk = x.abs() - c;
        // `<= 0` and not `> 0`: NaN falls through to copysign and stays NaN.
        *x = if shrunk <= 0.0 {
            0.0
        } else {
            shrunk.copysign(*x)
        };
    }
}

/// Where the k-th largest magnitude of a sequence falls: the l0 projection keeps every
/// value whose magnitude is above `threshold`, plus the first `ties` values (in
/// sequence order) whose magnitude equals it. That makes the kept count exactly k even
/// when magnitudes tie, and the choice deterministic (lower position wins).
#[derive(Clone, Copy, Debug)]
struct Cut {
    threshold: f32,
    ties: usize,
}

impl Cut {
    /// The cut keeping `k` of the magnitudes that `mags()` yields (1 <= k < their
    /// count), with no allocation: the prox runs after every optimiser step, and a copy of
    /// |v| would be as large as the biggest layer (method.md section 2 asks for the
    /// proximal method's memory to be measured against ADMM's). A radix select on the
    /// bit patterns: for non-negative floats (and `abs` of a NaN, a positive NaN) the bits
    /// read as u32 order exactly like `total_cmp`, so four passes of a 256-bin histogram,
    /// one per byte from the top, find the k-th largest magnitude. A NaN counts as the
    /// largest.
    fn keeping<I: Iterator<Item = f32>>(mags: impl Fn() -> I, k: usize) -> Cut {
        debug_assert!(k >= 1);
        let (mut prefix, mut fixed, mut need) = (0u32, 0u32, k);
        for shift in [24u32, 16, 8, 0] {
            let mut hist = [0usize; 256];
            for m in mags() {
                let key = m.abs().to_bits();
                if key & fixed == prefix {
                    hist[((key >> shift) & 0xFF) as usize] += 1;
                }
            }
            // The byte of the k-th largest key: walk the bins from the top.
            let mut byte = 255;
            while hist[byte] < need && byte > 0 {
                need -= hist[byte];
                byte -= 1;
            }
            prefix |= (byte as u32) << shift;
            fixed |= 0xFF << shift;
        }
        // `need` values equal to the k-th largest complete the k.
        Cut {
            threshold: f32::from_bits(prefix),
            ties: need,
        }
    }

    /// Zeroes what the cut drops, in sequence order; returns how many positions it kept.
    fn apply<'a>(&mut self, values: impl Iterator<Item = &'a mut f32>) -> usize {
        let mut kept = 0;
        for x in values {
            if self.keeps(*x) {
                kept += 1;
            } else {
                *x = 0.0;
            }
        }
        kept
    }

    /// Whether the next value in sequence order is kept (consumes a tie slot).
    fn keeps(&mut self, x: f32) -> bool {
        match x.abs().total_cmp(&self.threshold) {
            Ordering::Greater => true,
            Ordering::Equal if self.ties > 0 => {
                self.ties -= 1;
                true
            }
            _ => false,
        }
    }
}

/// The l0-ball projection: keeps the `k` largest |v| and zeroes the rest (method.md
/// section 2, step 4, the l0 budget; ADMM's Proj_S of section 3).
///
/// Afterwards exactly min(k, nnz(v)) values are non-zero, even with tied magnitudes
/// (the lower index wins a tie). Survivors keep their value and sign. Applying it
/// twice is the same as once. O(n), five passes over v and no allocation.
pub fn keep_top_k(v: &mut [f32], k: usize) {
    if k >= v.len() {
        return;
    }
    if k == 0 {
        v.fill(0.0);
        return;
    }
    let mut cut = Cut::keeping(|| v.iter().copied(), k);
    cut.apply(v.iter_mut());
}

/// The cut of the global l0 projection over `groups` (None: keep everything or nothing).
fn global_cut(params: &[f32], groups: &[Group], k: usize) -> Option<Cut> {
    let total: usize = groups.iter().map(Group::len).sum();
    if k == 0 || k >= total {
        return None;
    }
    let mags = || {
        groups
            .iter()
            .flat_map(|g| params[g.range.clone()].iter().copied())
    };
    Some(Cut::keeping(mags, k))
}

/// The l0 projection over several tensors of one buffer at once (the global budget):
/// keeps the `k` largest |w| over all of `groups` together, zeroes the rest of them,
/// and leaves every value outside the groups alone. Ties go to the earlier group, then
/// to the lower index. Exactly min(k, non-zeros in the groups) survive.
///
/// A group may lose all its weights; [`global_top_k_counts`] tells before it happens.
pub fn keep_top_k_global(params: &mut [f32], groups: &[Group], k: usize) {
    let total: usize = groups.iter().map(Group::len).sum();
    if k >= total {
        return;
    }
    match global_cut(params, groups, k) {
        Some(mut cut) => {
            for g in groups {
                cut.apply(params[g.range.clone()].iter_mut());
            }
        }
        None => groups
            .iter()
            .for_each(|g| params[g.range.clone()].fill(0.0)),
    }
}

/// How many positions of each group [`keep_top_k_global`] would keep (they sum to
/// min(k, total)); `params` is not changed. Applying [`keep_top_k`] to each group with
/// these counts selects the same weights as [`keep_top_k_global`].
pub fn global_top_k_counts(params: &[f32], groups: &[Group], k: usize) -> Vec<usize> {
    match global_cut(params, groups, k) {
        Some(mut cut) => groups
            .iter()
            .map(|g| {
                params[g.range.clone()]
                    .iter()
                    .filter(|&&x| cut.keeps(x))
                    .count()
            })
            .collect(),
        None if k == 0 => vec![0; groups.len()],
        None => groups.iter().map(Group::len).collect(),
    }
}

/// The soft-threshold level that leaves at most `k` non-zeros: the (k+1)-th largest |v|
/// (0 if k >= v.len()). [`soft_threshold`] at this c zeroes every |v| <= c, so exactly
/// k survive when no magnitude ties the (k+1)-th (and v has at least k non-zeros). The
/// "quantile" choice of c in method.md section 2; [`keep_top_k`] is its exact form.
pub fn threshold_for_count(v: &[f32], k: usize) -> f32 {
    if k >= v.len() {
        return 0.0;
    }
    let mut mags: Vec<f32> = v.iter().map(|x| x.abs()).collect();
    *mags.select_nth_unstable_by(k, |a, b| b.total_cmp(a)).1
}

/// Group soft-thresholding, the prox of c sum_g ||v_g||_2 over consecutive groups of
/// `group_len` values (a conv filter = one output channel's weights, [`Group::row_len`]):
/// v_g <- max(0, 1 - c / ||v_g||_2) v_g. A group whose norm is at most c becomes zero;
/// any other keeps its direction and its norm shrinks by exactly c.
///
/// # Panics
/// If `group_len` is 0 or does not divide `v.len()`, or if `c` is negative or NaN.
pub fn group_l2(v: &mut [f32], group_len: usize, c: f32) {
    assert!(
        group_len > 0 && v.len().is_multiple_of(group_len),
        "group_l2: group length {group_len} must divide the {} values",
        v.len()
    );
    assert!(c >= 0.0, "group_l2: threshold must be >= 0, got {c}");
    for g in v.chunks_exact_mut(group_len) {
        // The norm in f64: a filter has up to thousands of values.
        let norm = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        if norm <= c as f64 {
            g.fill(0.0);
        } else {
            let scale = (1.0 - c as f64 / norm) as f32;
            g.iter_mut().for_each(|x| *x *= scale);
        }
    }
}

/// The prox of (c / 2) dist(v, S_k)^2, the squared distance to the l0 ball
/// S_k = {||v||_0 <= k}: keeps the `k` largest |v| and divides the rest by (1 + c).
///
/// Why that is the prox: for a support T of k positions, dist(x, S_k)^2 is at most
/// sum_{i not in T} x_i^2, with equality for the best T. Minimising
/// 1/2 ||x - v||^2 + c/2 sum_{i not in T} x_i^2 gives x_i = v_i on T and v_i / (1 + c)
/// off it, at the cost c / (2 (1 + c)) sum_{i not in T} v_i^2, which the k largest |v_i|
/// in T make smallest. (With c = lr * lambda it is the regulariser
/// lambda / 2 dist(W_l, S_l)^2: ADMM's rho / 2 ||W - Z||^2 with Z = Proj_S(W) recomputed
/// each step instead of stored, and no dual U.)
///
/// Ties at the k-th magnitude go to the lower index, as in [`keep_top_k`]; no sign
/// flips; c = 0 changes nothing, and as c grows it tends to [`keep_top_k`].
///
/// # Panics
/// If `c` is negative or NaN.
pub fn shrink_outside_top_k(v: &mut [f32], k: usize, c: f32) {
    assert!(c >= 0.0, "shrink_outside_top_k: c must be >= 0, got {c}");
    if k >= v.len() || c == 0.0 {
        return;
    }
    let scale = 1.0 / (1.0 + c);
    if k == 0 {
        v.iter_mut().for_each(|x| *x *= scale);
        return;
    }
    let mut cut = Cut::keeping(|| v.iter().copied(), k);
    for x in v.iter_mut() {
        if !cut.keeps(*x) {
            *x *= scale;
        }
    }
}

/// One-shot magnitude pruning of a whole model: every conv and linear weight tensor keeps
/// its `len - round(sparsity * len)` largest magnitudes ([`keep_top_k`] per tensor);
/// biases and batch norm untouched. The `magnitude` baseline's first step, and how the
/// sparse benches and tests make pruned models.
pub fn prune_by_magnitude(model: &mut rcc_nn::Model, sparsity: f64) {
    for g in crate::Prunable::of(&model.net).groups {
        let zeroed = (g.len() as f64 * sparsity.clamp(0.0, 1.0)).round() as usize;
        keep_top_k(&mut model.params[g.range.clone()], g.len() - zeroed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_threshold_closed_form() {
        let mut v = [3.0, -3.0, 0.5, -0.5, 1.0, -1.0, 0.0, 2.25];
        soft_threshold(&mut v, 1.0);
        assert_eq!(v, [2.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.25]);
        let mut w = [-4.0f32, 0.25];
        soft_threshold(&mut w, 0.0);
        assert_eq!(w, [-4.0, 0.25]);
    }

    #[test]
    fn shrink_outside_top_k_closed_form() {
        // k = 2 keeps 3 and -2 (the tie at |1| does not matter here); the rest / (1 + 1).
        let mut v = [0.5, -2.0, 1.0, -1.0, 0.0, 3.0];
        shrink_outside_top_k(&mut v, 2, 1.0);
        assert_eq!(v, [0.25, -2.0, 0.5, -0.5, 0.0, 3.0]);
        // A tie at the k-th magnitude goes to the lower index.
        let mut t = [1.0, -1.0, 4.0];
        shrink_outside_top_k(&mut t, 2, 3.0);
        assert_eq!(t, [1.0, -0.25, 4.0]);
        // k = 0 shrinks everything, k >= len and c = 0 nothing.
        let mut a = [2.0, -4.0];
        shrink_outside_top_k(&mut a, 0, 1.0);
        assert_eq!(a, [1.0, -2.0]);
        for (k, c) in [(2, 5.0), (3, 5.0), (1, 0.0)] {
            let mut b = [2.0, -4.0];
            shrink_outside_top_k(&mut b, k, c);
            assert_eq!(b, [2.0, -4.0]);
        }
    }

    #[test]
    #[should_panic(expected = "c must be >= 0")]
    fn shrink_outside_top_k_rejects_negative_c() {
        shrink_outside_top_k(&mut [1.0, 2.0], 1, -1.0);
    }

    #[test]
    fn soft_threshold_keeps_nan() {
        let mut v = [f32::NAN, 5.0];
        soft_threshold(&mut v, 1.0);
        assert!(v[0].is_nan());
        assert_eq!(v[1], 4.0);
    }

    #[test]
    #[should_panic(expected = "threshold must be >= 0")]
    fn soft_threshold_rejects_negative_threshold() {
        soft_threshold(&mut [1.0], -0.1);
    }

    #[test]
    fn keep_top_k_hand_case_with_ties() {
        let v0 = [0.5, -2.0, 1.0, -1.0, 0.0, 1.0, 3.0];
        let cases: [(usize, [f32; 7]); 5] = [
            (0, [0.0; 7]),
            (1, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
            (2, [0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
            // Three magnitudes tie at 1 for the last two slots: the lower indices win.
            (4, [0.0, -2.0, 1.0, -1.0, 0.0, 0.0, 3.0]),
            // More slots than non-zeros: every non-zero survives.
            (6, [0.5, -2.0, 1.0, -1.0, 0.0, 1.0, 3.0]),
        ];
        for (k, want) in cases {
            let mut v = v0;
            keep_top_k(&mut v, k);
            assert_eq!(v, want, "k = {k}");
        }
        let mut all_tied = [1.0, -1.0, 1.0, -1.0];
        keep_top_k(&mut all_tied, 3);
        assert_eq!(all_tied, [1.0, -1.0, 1.0, 0.0]);
    }

    fn groups(lens: &[usize]) -> Vec<Group> {
        let mut start = 0;
        lens.iter()
            .enumerate()
            .map(|(i, &n)| {
                let g = Group {
                    name: format!("g{i}"),
                    range: start + 1..start + 1 + n, // one unpruned value before each
                    shape: vec![n],
                };
                start += n + 1;
                g
            })
            .collect()
    }

    #[test]
    fn keep_top_k_global_hand_case() {
        let gs = groups(&[3, 2]);
        // buffer: [bias, g0 x3, bias, g1 x2]
        let mut p = [9.0, 0.1, -5.0, 2.0, 9.0, -2.0, 0.3];
        assert_eq!(global_top_k_counts(&p, &gs, 3), vec![2, 1]);
        keep_top_k_global(&mut p, &gs, 3);
        // |2| ties |-2|: the earlier group's wins; the unpruned 9s stay.
        assert_eq!(p, [9.0, 0.0, -5.0, 2.0, 9.0, -2.0, 0.0]);
        let mut q = [9.0, 0.1, -5.0, 2.0, 9.0, -2.0, 0.3];
        keep_top_k_global(&mut q, &gs, 0);
        assert_eq!(q, [9.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0]);
        assert_eq!(global_top_k_counts(&q, &gs, 0), vec![0, 0]);
        assert_eq!(global_top_k_counts(&q, &gs, 10), vec![3, 2]);
    }

    #[test]
    fn threshold_for_count_hand_case() {
        let v = [0.5, -2.0, 1.5, -1.0, 3.0];
        assert_eq!(threshold_for_count(&v, 0), 3.0);
        assert_eq!(threshold_for_count(&v, 2), 1.5);
        assert_eq!(threshold_for_count(&v, 5), 0.0);
        let mut w = v;
        soft_threshold(&mut w, threshold_for_count(&v, 2));
        assert_eq!(w, [0.0, -0.5, 0.0, 0.0, 1.5]);
    }

    #[test]
    fn group_l2_closed_form() {
        // Groups of 2: norms 5, 0.6, 2 with c = 1.
        let mut v = [3.0, -4.0, 0.6, 0.0, 0.0, -2.0];
        group_l2(&mut v, 2, 1.0);
        // (1 - 1/5) (3, -4) = (2.4, -3.2); 0.6 <= 1 -> 0; (1 - 1/2) (0, -2) = (0, -1).
        let want = [2.4, -3.2, 0.0, 0.0, 0.0, -1.0];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        let mut exact = [3.0, 4.0];
        group_l2(&mut exact, 2, 5.0);
        assert_eq!(exact, [0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "must divide")]
    fn group_l2_rejects_ragged_groups() {
        group_l2(&mut [1.0; 5], 2, 0.1);
    }

    /// Each conv/linear weight loses exactly round(sparsity * len) entries, the
    /// smallest; biases stay.
    #[test]
    fn magnitude_pruning_zeroes_the_smallest_per_tensor() {
        let mut m = rcc_nn::Model::new(rcc_nn::Arch::LenetAdv(1), 5);
        let before = m.params.clone();
        prune_by_magnitude(&mut m, 0.9);
        let p = crate::Prunable::of(&m.net);
        for g in &p.groups {
            let w = &m.params[g.range.clone()];
            let kept = w.iter().filter(|v| **v != 0.0).count();
            assert_eq!(
                kept,
                g.len() - (g.len() as f64 * 0.9).round() as usize,
                "{}",
                g.name
            );
            let min_kept = w
                .iter()
                .filter(|v| **v != 0.0)
                .fold(f32::MAX, |a, v| a.min(v.abs()));
            let max_dropped = before[g.range.clone()]
                .iter()
                .zip(w)
                .filter(|(_, a)| **a == 0.0)
                .fold(0f32, |a, (b, _)| a.max(b.abs()));
            assert!(max_dropped <= min_kept, "{}", g.name);
        }
        let prunable: Vec<bool> = (0..m.params.len())
            .map(|j| p.groups.iter().any(|g| g.range.contains(&j)))
            .collect();
        for (j, (a, b)) in m.params.iter().zip(&before).enumerate() {
            if !prunable[j] {
                assert_eq!(a, b);
            }
        }
    }
}
