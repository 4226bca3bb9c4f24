//! The verdict of a sweep row: ours against our ADMM (each ADMM setting the preset runs)
//! at one rate, on the means over their seeds, with the spread stated. The robust figure
//! is the worst case per image over every attack, AutoAttack and the gradient-free Square
//! included, when both cells have it.

use crate::presets::{Entry, Role, TIE_PTS};
use crate::report::Summary;

/// Mean, sample standard deviation (NaN for one value) and count of a cell's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stat {
    /// The statistics of the finite values of `v` (a figure not measured is NaN and left
    /// out); `None` if there is none.
    pub fn of(v: &[f64]) -> Option<Stat> {
        let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        Some(Stat { mean, sd, n })
    }

    /// `mean ± sd` in percent (`mean` alone for one seed).
    pub fn pct(&self) -> String {
        if self.n > 1 {
            format!("{:.2} ± {:.2}", 100.0 * self.mean, 100.0 * self.sd)
        } else {
            format!("{:.2}", 100.0 * self.mean)
        }
    }
}

/// The band (in points) within which two cells' means are a tie: the larger of their
/// seed sds, or [`TIE_PTS`] when a cell has one seed.
pub fn tie_band(a: &Stat, b: &Stat) -> f64 {
    if a.n > 1 && b.n > 1 {
        100.0 * a.sd.max(b.sd)
    } else {
        TIE_PTS
    }
}

/// Cell `a` against cell `b`: the difference of their means in points, the tie band, and
/// which side of the band the difference falls (`Equal`: a tie). A difference of exactly
/// the band, as printed, is a tie (the 1e-9).
pub fn compare(a: &Stat, b: &Stat) -> (f64, f64, std::cmp::Ordering) {
    let (d, band) = (100.0 * (a.mean - b.mean), tie_band(a, b));
    let side = if d > band + 1e-9 {
        std::cmp::Ordering::Greater
    } else if d < -band - 1e-9 {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Equal
    };
    (d, band, side)
}

/// A figure of the cell `role` at `rate` over its seeds.
pub fn cell_stat(
    results: &[(&Entry, Option<Summary>)],
    role: Role,
    rate: f64,
    pick: fn(&Summary) -> f64,
) -> Option<Stat> {
    let v: Vec<f64> = results
        .iter()
        .filter(|(e, _)| e.role == role && (e.rate - rate).abs() < 1e-9)
        .filter_map(|(_, s)| s.as_ref().map(pick))
        .collect();
    Stat::of(&v)
}

/// How a verdict names an ADMM baseline.
pub fn admm_name(admm: Role) -> &'static str {
    match admm {
        Role::Admm => "our ADMM",
        Role::AdmmTuned => "our ADMM at rho 0.01",
        other => other.label(),
    }
}

/// Ours against our ADMM (`admm`: Ye et al.'s setting, or the rho tuned under Adam) at
/// `rate`, on the means over their seeds: the verdict line and the natural / robust
/// differences for the table; `None` unless both cells have runs.
/// The robust figure is the worst case with AutoAttack and Square when every run of both
/// cells has it, else PGD-40. A tie is a difference within the larger of the two
/// standard deviations, or within [`TIE_PTS`] when a cell has one seed.
pub fn verdict(
    results: &[(&Entry, Option<Summary>)],
    rate: f64,
    steps: usize,
    admm: Role,
) -> Option<(String, String)> {
    let nat = |role| cell_stat(results, role, rate, |s| s.dense.clean);
    let with_aa = results
        .iter()
        .filter(|(e, _)| (e.role == Role::Ours || e.role == admm) && (e.rate - rate).abs() < 1e-9)
        .filter_map(|(_, s)| s.as_ref())
        .all(|s| s.dense.worst_aa.is_finite());
    let pick: fn(&Summary) -> f64 = if with_aa {
        |s| s.dense.worst_aa
    } else {
        |s| s.dense.pgd
    };
    let (on, oa) = (nat(Role::Ours)?, nat(admm)?);
    let (ro, ra) = (
        cell_stat(results, Role::Ours, rate, pick)?,
        cell_stat(results, admm, rate, pick)?,
    );
    let dn = 100.0 * (on.mean - oa.mean);
    let (dp, band, side) = compare(&ro, &ra);
    let why = if ro.n > 1 && ra.n > 1 {
        format!("{band:.2} points, the larger seed sd")
    } else {
        format!("{TIE_PTS} points, one run's noise")
    };
    let on_what = if with_aa {
        format!(
            "the worst case with AutoAttack and Square (first {})",
            crate::evaluate::AA_IMAGES
        )
    } else {
        format!("PGD-{steps}")
    };
    let seeds = if ro.n > 1 || ra.n > 1 {
        format!(
            ", means of {} and {} seeds: ours {}, {} {}",
            ro.n,
            ra.n,
            ro.pct(),
            admm_name(admm),
            ra.pct()
        )
    } else {
        String::new()
    };
    let line = format!(
        "ours {} {} on {on_what} ({dp:+.2} points{seeds}); natural {dn:+.2} points ({}).",
        match side {
            std::cmp::Ordering::Greater => "beats".to_string(),
            std::cmp::Ordering::Equal => format!("ties (within {why}) with"),
            std::cmp::Ordering::Less => "does NOT beat".to_string(),
        },
        admm_name(admm),
        if dn >= 0.0 {
            "not lower"
        } else if dn >= -0.5 {
            "lower, within the 0.5-point allowance"
        } else {
            "MORE than 0.5 points lower"
        }
    );
    Some((line, format!("{dn:+.2} / {dp:+.2}")))
}
