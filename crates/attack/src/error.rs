//! The attack crate's error type.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// An invalid attack setting (negative eps, zero steps, ...).
    Config(String),
    /// The model failed (shape mismatch, ...).
    Model(String),
    /// A test set handed out a malformed batch.
    Data(String),
    /// An attack returned a point outside its threat model (a bug, never expected).
    Check(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "attack configuration: {m}"),
            Error::Model(m) => write!(f, "model: {m}"),
            Error::Data(m) => write!(f, "data: {m}"),
            Error::Check(m) => write!(f, "attack check failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rcc_nn::Error> for Error {
    fn from(e: rcc_nn::Error) -> Self {
        Error::Model(e.to_string())
    }
}

impl From<rcc_tensor::Error> for Error {
    fn from(e: rcc_tensor::Error) -> Self {
        Error::Model(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
