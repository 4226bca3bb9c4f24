//! The train crate's error type: the errors of the crates below it keep their source,
//! and a run-level failure (a loss that became NaN, a checkpoint that cannot resume the
//! run) says what happened and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// A setting that is unknown, out of range, or that conflicts with another; the
    /// message names the key and the value.
    Config(String),
    /// An attack failed (crafting a training batch, or an evaluation).
    Attack(rcc_attack::Error),
    /// A model, optimiser or checkpoint error (a model file that does not load, ...).
    Nn(rcc_nn::Error),
    /// A dataset could not be read.
    Data(rcc_data::Error),
    /// The compression method refused its settings or its state.
    Compress(rcc_compress::Error),
    /// The sparse export or the sparse engine failed.
    Sparse(rcc_sparse::Error),
    /// The operating system refused a read or write of a run folder's file.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of a run folder (metrics, summary) is malformed.
    File {
        path: PathBuf,
        /// The line, key or field at fault, and what was expected.
        problem: String,
    },
    /// The run stopped: the loss became NaN or infinite, the export does not match the
    /// trained model, ... The message says what happened and what to do.
    Run(String),
    /// An error with what was being done when it happened ("teacher", "init", ...).
    Context { context: String, source: Box<Error> },
}

impl Error {
    /// `e` with what was being done when it happened, shown as `context: e`.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// A failed read or write of `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) | Error::Run(m) => write!(f, "{m}"),
            Error::Attack(e) => write!(f, "{e}"),
            Error::Nn(e) => write!(f, "{e}"),
            Error::Data(e) => write!(f, "{e}"),
            Error::Compress(e) => write!(f, "{e}"),
            Error::Sparse(e) => write!(f, "{e}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::File { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Context { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Attack(e) => Some(e),
            Error::Nn(e) => Some(e),
            Error::Data(e) => Some(e),
            Error::Compress(e) => Some(e),
            Error::Sparse(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Context { source, .. } => Some(source.as_ref()),
            Error::Config(_) | Error::Run(_) | Error::File { .. } => None,
        }
    }
}

macro_rules! from_error {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$v(e)
            }
        }
    )*};
}

from_error!(
    rcc_attack::Error => Attack,
    rcc_nn::Error => Nn,
    rcc_data::Error => Data,
    rcc_compress::Error => Compress,
    rcc_sparse::Error => Sparse
);

impl From<rcc_tensor::Error> for Error {
    fn from(e: rcc_tensor::Error) -> Self {
        Error::Nn(e.into())
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
