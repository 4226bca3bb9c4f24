//! Invariants of the proximal operators (method.md section 2) on random inputs: exact
//! counts, no sign flips, idempotence of the l0 projection, optimality of the prox.

use proptest::prelude::*;
use rcc_compress::{
    group_l2, keep_top_k, keep_top_k_global, shrink_outside_top_k, soft_threshold,
    threshold_for_count, Group,
};

/// Values with many exact zeros and tied magnitudes (small integers of either sign)
/// mixed with continuous ones.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        (-4i32..=4).prop_map(|i| i as f32),
        -10.0f32..10.0,
    ]
}

fn values(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(value(), 0..max_len)
}

fn nnz(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x != 0.0).count()
}

/// (c / 2) dist(x, {||x||_0 <= k})^2 + 1/2 ||x - v||^2 in f64: the objective whose
/// minimiser [`shrink_outside_top_k`] claims to be.
fn sparse_distance_objective(x: &[f32], v: &[f32], k: usize, c: f32) -> f64 {
    let mut sq: Vec<f64> = x.iter().map(|&a| (a as f64).powi(2)).collect();
    sq.sort_by(f64::total_cmp);
    let dist2: f64 = sq[..x.len().saturating_sub(k)].iter().sum();
    let fit: f64 = x
        .iter()
        .zip(v)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    0.5 * c as f64 * dist2 + 0.5 * fit
}

fn same_sign_or_zero(out: f32, input: f32) -> bool {
    out == 0.0 || out.signum() == input.signum()
}

proptest! {
    #[test]
    fn soft_threshold_shrinks_without_sign_flips(v in values(64), c in 0.0f32..6.0) {
        let mut out = v.clone();
        soft_threshold(&mut out, c);
        for (&o, &x) in out.iter().zip(&v) {
            prop_assert!(same_sign_or_zero(o, x), "{x} -> {o}");
            prop_assert!(o.abs() <= x.abs());
            prop_assert_eq!(o == 0.0, x.abs() <= c, "{} -> {} at c = {}", x, o, c);
        }
    }

    /// S_c(v) minimises 0.5 (x - v)^2 + c |x|: it satisfies the subgradient condition
    /// and no candidate on a grid around v does better.
    #[test]
    fn soft_threshold_is_the_l1_prox(v in -10.0f32..10.0, c in 0.0f32..6.0) {
        let mut out = [v];
        soft_threshold(&mut out, c);
        let x = out[0] as f64;
        let (v, c) = (v as f64, c as f64);
        if x == 0.0 {
            prop_assert!(v.abs() <= c);
        } else {
            prop_assert!((x - v + c * x.signum()).abs() < 1e-5);
        }
        let objective = |y: f64| 0.5 * (y - v).powi(2) + c * y.abs();
        for i in -200..=200 {
            let y = v + i as f64 * 0.05;
            prop_assert!(objective(x) <= objective(y) + 1e-6, "x = {x}, y = {y}");
        }
        prop_assert!(objective(x) <= objective(0.0) + 1e-6);
    }

    #[test]
    fn keep_top_k_is_the_l0_projection(v in values(80), k in 0usize..90) {
        let mut out = v.clone();
        keep_top_k(&mut out, k);
        // Exact count, even with ties.
        prop_assert_eq!(nnz(&out), k.min(nnz(&v)));
        // Survivors are unchanged, the rest zeroed: no sign flips, no shrinkage.
        for (&o, &x) in out.iter().zip(&v) {
            prop_assert!(o == x || o == 0.0, "{x} -> {o}");
        }
        // Every kept magnitude is at least every dropped one.
        let kept = v.iter().zip(&out).filter(|(_, &o)| o != 0.0).map(|(x, _)| x.abs());
        let dropped = v.iter().zip(&out).filter(|(_, &o)| o == 0.0).map(|(x, _)| x.abs());
        let min_kept = kept.fold(f32::INFINITY, f32::min);
        let max_dropped = dropped.fold(0.0f32, f32::max);
        prop_assert!(min_kept >= max_dropped, "kept {min_kept} < dropped {max_dropped}");
        // Idempotent.
        let mut twice = out.clone();
        keep_top_k(&mut twice, k);
        prop_assert_eq!(twice, out);
    }

    /// The soft l0 prox: the l0 projection's survivors unchanged, everything else divided
    /// by (1 + c), no sign flips, and no better point nearby or among the obvious
    /// candidates (v itself, its l0 projection).
    #[test]
    fn shrink_outside_top_k_is_the_sparse_distance_prox(
        v in values(60),
        k in 0usize..70,
        c in 0.0f32..20.0,
        bump in -1.0f32..1.0,
        at in 0usize..60,
    ) {
        let mut out = v.clone();
        shrink_outside_top_k(&mut out, k, c);
        let mut top = v.clone();
        keep_top_k(&mut top, k);
        let scale = 1.0 / (1.0 + c);
        for i in 0..v.len() {
            let want = if top[i] != 0.0 || k >= v.len() || c == 0.0 { v[i] } else { v[i] * scale };
            prop_assert_eq!(out[i], want, "at {}", i);
            prop_assert!(same_sign_or_zero(out[i], v[i]));
        }
        let f = |x: &[f32]| sparse_distance_objective(x, &v, k, c);
        let tol = 1e-6 * (1.0 + f(&v));
        prop_assert!(f(&out) <= f(&v) + tol, "{} > {}", f(&out), f(&v));
        prop_assert!(f(&out) <= f(&top) + tol, "{} > {}", f(&out), f(&top));
        if !v.is_empty() {
            let mut moved = out.clone();
            moved[at % v.len()] += bump;
            prop_assert!(f(&out) <= f(&moved) + tol, "{} > {}", f(&out), f(&moved));
        }
    }

    /// Against the naive reference: sort positions by |v| descending, then by index, and
    /// keep the first k. Magnitudes span the whole f32 range (subnormals to huge, ties,
    /// infinities), so every byte of the radix select decides somewhere.
    #[test]
    fn keep_top_k_matches_the_sorting_reference(
        v in prop::collection::vec(prop_oneof![
            any::<f32>().prop_filter("not NaN", |x| !x.is_nan()),
            (-3i32..=3).prop_map(|i| i as f32),
            Just(f32::MIN_POSITIVE / 8.0),
        ], 0..120),
        k in 0usize..130,
    ) {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()).then(a.cmp(&b)));
        let mut want = vec![0.0f32; v.len()];
        for &i in order.iter().take(k) {
            want[i] = v[i];
        }
        let mut got = v.clone();
        keep_top_k(&mut got, k);
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        // -0.0 and 0.0 both count as dropped; compare zeros as zeros.
        let norm = |x: Vec<f32>| x.into_iter().map(|f| if f == 0.0 { 0.0 } else { f }).collect::<Vec<_>>();
        prop_assert_eq!(bits(&norm(got)), bits(&norm(want)));
    }

    #[test]
    fn keep_top_k_global_keeps_exactly_k_overall(
        lens in prop::collection::vec(1usize..40, 1..5),
        pool in prop::collection::vec(value(), 200),
        k in 0usize..200,
    ) {
        // Groups separated by one unpruned value each.
        let mut groups = vec![];
        let mut at = 0;
        for (i, &n) in lens.iter().enumerate() {
            groups.push(Group { name: format!("g{i}"), range: at + 1..at + 1 + n, shape: vec![n] });
            at += n + 1;
        }
        let params: Vec<f32> = pool[..at].to_vec();
        let mut out = params.clone();
        keep_top_k_global(&mut out, &groups, k);
        let in_groups = |buf: &[f32]| -> Vec<f32> {
            groups.iter().flat_map(|g| buf[g.range.clone()].to_vec()).collect()
        };
        let (before, after) = (in_groups(&params), in_groups(&out));
        prop_assert_eq!(nnz(&after), k.min(nnz(&before)));
        for (i, (&o, &x)) in out.iter().zip(&params).enumerate() {
            if groups.iter().any(|g| g.range.contains(&i)) {
                prop_assert!(o == x || o == 0.0);
            } else {
                prop_assert_eq!(o, x, "unpruned value {} changed", i);
            }
        }
        let min_kept = before.iter().zip(&after).filter(|(_, &o)| o != 0.0)
            .map(|(x, _)| x.abs()).fold(f32::INFINITY, f32::min);
        let max_dropped = before.iter().zip(&after).filter(|(_, &o)| o == 0.0)
            .map(|(x, _)| x.abs()).fold(0.0f32, f32::max);
        prop_assert!(min_kept >= max_dropped);
        let mut twice = out.clone();
        keep_top_k_global(&mut twice, &groups, k);
        prop_assert_eq!(twice, out);
    }

    /// With distinct magnitudes, soft-thresholding at the (k+1)-th largest magnitude
    /// leaves exactly k non-zeros.
    #[test]
    fn threshold_for_count_leaves_k(n in 1usize..60, k in 0usize..60, seed in 1u32..1000) {
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let m = ((i as u32 * 7919 + seed) % 1009 + 1) as f32 / 64.0;
                let m = m + i as f32 * 1e-3; // breaks any residual tie
                if (i as u32 + seed).is_multiple_of(2) { m } else { -m }
            })
            .collect();
        let mut out = v.clone();
        soft_threshold(&mut out, threshold_for_count(&v, k));
        prop_assert_eq!(nnz(&out), k.min(n));
    }

    #[test]
    fn group_l2_zeroes_or_shrinks_each_norm_by_c(
        groups in 1usize..6,
        group_len in 1usize..9,
        pool in prop::collection::vec(value(), 48),
        c in 0.0f32..8.0,
    ) {
        let v = pool[..groups * group_len].to_vec();
        let mut out = v.clone();
        group_l2(&mut out, group_len, c);
        let norm = |g: &[f32]| g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        for (gi, go) in v.chunks(group_len).zip(out.chunks(group_len)) {
            let (ni, no) = (norm(gi), norm(go));
            if ni <= c as f64 {
                prop_assert!(go.iter().all(|&x| x == 0.0));
            } else {
                prop_assert!((no - (ni - c as f64)).abs() < 1e-4 * ni.max(1.0), "{ni} -> {no}");
                // Same direction: out = s v with one s in (0, 1] for the whole group.
                let s = no / ni;
                for (&o, &x) in go.iter().zip(gi) {
                    prop_assert!(same_sign_or_zero(o, x));
                    prop_assert!((o as f64 - s * x as f64).abs() < 1e-5 * ni.max(1.0));
                }
            }
        }
    }
}
