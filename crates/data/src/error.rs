//! The data crate's error type: one hand-written enum with `Display`.
//!
//! Every variant carries the path of the file involved, so a message read on its own
//! (in a log, after `?` has carried it up to `main`) says which file is at fault, which
//! field or record is wrong, and what was expected against what was found.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while finding, reading and decoding dataset files.
#[derive(Debug)]
pub enum Error {
    /// The operating system could not read the file (permissions, a directory in the
    /// file's place, an I/O error).
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's bytes do not follow its format. `field` names the part that is wrong
    /// (`"magic number"`, `"dimensions"`, `"label 17"`, `"CRC-32"`, ...) and `problem`
    /// says what was expected and what was found.
    Format {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// A dataset file is not on disk. `hint` is the command that fetches it.
    Missing {
        path: PathBuf,
        dataset: String,
        hint: String,
    },
    /// A method was called with an argument it cannot honour (a validation split
    /// larger than the dataset, ...). No file is involved.
    Invalid { op: &'static str, problem: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            Error::Format {
                path,
                field,
                problem,
            } => write!(f, "{}: bad {field}: {problem}", path.display()),
            Error::Missing {
                path,
                dataset,
                hint,
            } => write!(
                f,
                "{dataset} data file not found: {}; {hint}",
                path.display()
            ),
            Error::Invalid { op, problem } => write!(f, "{op}: {problem}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The data crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a [`Error::Format`].
pub(crate) fn format_err<T>(
    path: &Path,
    field: impl Into<String>,
    problem: impl Into<String>,
) -> Result<T> {
    Err(Error::Format {
        path: path.to_path_buf(),
        field: field.into(),
        problem: problem.into(),
    })
}
