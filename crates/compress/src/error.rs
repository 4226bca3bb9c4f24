//! Errors of the compression crate: bad rates and budgets, buffers of the wrong length,
//! inconsistent groups, invalid options.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A compression rate (prunable / non-zero prunable) must be a finite number >= 1.
    Rate { rate: f64 },
    /// The rate leaves fewer weights than the budget needs: `keep` = round(total / rate),
    /// `min` = one per pruned layer (per-layer budget) or one in all (global budget).
    TooFewWeights { rate: f64, keep: usize, min: usize },
    /// A buffer has the wrong length.
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A group overlaps another, falls outside the parameter buffer or disagrees with
    /// its shape.
    Group { name: String, problem: String },
    /// Keep counts must be one per group, each at most the group's size.
    KeepCounts(String),
    /// An invalid option (ADMM's rho, its growth factor, ...).
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rate { rate } => write!(
                f,
                "compression rate must be a finite number >= 1 (prunable / non-zero), got {rate}"
            ),
            Error::TooFewWeights { rate, keep, min } => write!(
                f,
                "compression rate {rate} keeps {keep} weights, fewer than the {min} the budget needs (at least one per pruned layer for a per-layer budget)"
            ),
            Error::Length {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} values, got {got}"),
            Error::Group { name, problem } => write!(f, "prunable group {name}: {problem}"),
            Error::KeepCounts(msg) => write!(f, "keep counts: {msg}"),
            Error::Config(msg) => write!(f, "configuration: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks a buffer's length; the per-step operations call it and panic on a mismatch
/// (a programming error, not user input), the constructors turn it into an [`Error`].
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            got,
        })
    }
}

/// The panicking form of [`check_len`], for the per-step operations.
#[track_caller]
pub(crate) fn assert_len(what: &'static str, expected: usize, got: usize) {
    if let Err(e) = check_len(what, expected, got) {
        panic!("{e}");
    }
}
