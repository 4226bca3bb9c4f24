//! The nn crate's error type: a small hand-written enum with `Display`.
//!
//! File errors always name the file, the field (tensor name, header key, ...) and what
//! was expected, so a user can tell a truncated download from a wrong architecture.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// The operating system refused a read or write.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is malformed or does not match what the model expects.
    File {
        path: PathBuf,
        /// The tensor name or header field at fault ("header", "conv1.weight", ...).
        field: String,
        /// What was expected and what was found.
        problem: String,
    },
    /// An unknown or malformed architecture string, or a layer configuration error.
    Arch(String),
    /// An invalid option (learning rate, schedule, ...).
    Config(String),
    /// A tensor op failed (shape mismatch, ...).
    Tensor(rcc_tensor::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::File {
                path,
                field,
                problem,
            } => write!(f, "{}: {field}: {problem}", path.display()),
            Error::Arch(msg) => write!(f, "architecture: {msg}"),
            Error::Config(msg) => write!(f, "configuration: {msg}"),
            Error::Tensor(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rcc_tensor::Error> for Error {
    fn from(e: rcc_tensor::Error) -> Self {
        Error::Tensor(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a file error.
pub(crate) fn file_err<T>(
    path: impl Into<PathBuf>,
    field: impl Into<String>,
    problem: impl Into<String>,
) -> Result<T> {
    Err(Error::File {
        path: path.into(),
        field: field.into(),
        problem: problem.into(),
    })
}
