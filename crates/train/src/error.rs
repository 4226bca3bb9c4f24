//! The train crate's error type.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// A setting that is unknown, out of range, or that conflicts with another; the
    /// message names the key and the value.
    Config(String),
    /// An attack failed (crafting the adversarial batch of a training step).
    Attack(rcc_attack::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "{m}"),
            Error::Attack(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Attack(e) => Some(e),
            Error::Config(_) => None,
        }
    }
}

impl From<rcc_attack::Error> for Error {
    fn from(e: rcc_attack::Error) -> Self {
        Error::Attack(e)
    }
}

impl From<String> for Error {
    fn from(m: String) -> Self {
        Error::Config(m)
    }
}

/// For callers whose errors are messages (the command line).
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.to_string()
    }
}

pub type Result<T> = std::result::Result<T, Error>;
