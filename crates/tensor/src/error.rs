//! The tensor crate's error type: a small hand-written enum with `Display`.

use std::fmt;

/// Everything that can go wrong at the tensor crate's public edges.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An op was given operands whose shapes do not fit together.
    Shape {
        op: &'static str,
        expected: String,
        got: String,
    },
    /// An op argument is out of its valid range (a zero stride, a label >= classes, ...).
    Invalid { op: &'static str, problem: String },
    /// The backward pass was asked for something the tape cannot give.
    Backward(String),
    /// A thread pool could not be built.
    Threads(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, expected, got } => {
                write!(f, "{op}: shape mismatch: expected {expected}, got {got}")
            }
            Error::Invalid { op, problem } => write!(f, "{op}: {problem}"),
            Error::Backward(msg) => write!(f, "backward: {msg}"),
            Error::Threads(msg) => write!(f, "thread pool: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a shape error.
pub(crate) fn shape_err<T>(
    op: &'static str,
    expected: impl Into<String>,
    got: impl fmt::Debug,
) -> Result<T> {
    Err(Error::Shape {
        op,
        expected: expected.into(),
        got: format!("{got:?}"),
    })
}

/// Shorthand for an invalid-argument error.
pub(crate) fn invalid<T>(op: &'static str, problem: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        problem: problem.into(),
    })
}
