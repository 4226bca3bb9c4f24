//! Errors of the sparse crate: malformed CSR data, unsupported layers, bad shapes, bad
//! sparse model files.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `row_ptr` must have `rows + 1` entries.
    RowPtrLen { rows: usize, len: usize },
    /// `row_ptr[0]` must be 0.
    RowPtrStart { first: u32 },
    /// `row_ptr[row + 1] < row_ptr[row]`.
    RowPtrDecreasing { row: usize, start: u32, end: u32 },
    /// The last row pointer must equal the number of stored values.
    RowPtrEnd { last: u32, nnz: usize },
    /// `values` and `col_idx` must have the same length.
    IndexCount { values: usize, indices: usize },
    /// A column index is not below the column count.
    IndexOutOfRange {
        row: usize,
        index: usize,
        cols: usize,
    },
    /// Column indices must be strictly increasing within a row (sorted, no duplicates).
    IndicesNotIncreasing {
        row: usize,
        prev: usize,
        next: usize,
    },
    /// 16-bit indices used for a matrix with more than 65536 columns.
    IndexWidth { cols: usize },
    /// The matrix is too large for 32-bit row pointers.
    TooLarge { what: &'static str, len: usize },
    /// A buffer or tensor has the wrong shape or length.
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// A layer or configuration the sparse engine does not handle (yet).
    Unsupported(String),
    /// A sparse model file is malformed or inconsistent (see [`crate::file`]).
    File {
        path: PathBuf,
        /// The tensor, metadata key or layer at fault (`layer.3.row_ptr`, `input`, ...).
        field: String,
        /// What was expected and what was found.
        problem: String,
    },
    /// The operating system refused a read or write. The message, not the
    /// `std::io::Error`, is kept so that this enum stays `Clone` and `Eq`.
    Io { path: PathBuf, message: String },
    /// Any other error of the dense crate (`rcc_nn`), as its message.
    Nn(String),
    /// A request the C export cannot honour (see [`crate::c_export`]): the field at fault,
    /// what was expected and what was given.
    CExport {
        field: String,
        expected: String,
        got: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RowPtrLen { rows, len } => write!(
                f,
                "CSR row pointers: expected {} entries (rows + 1), got {len}",
                rows + 1
            ),
            Error::RowPtrStart { first } => {
                write!(f, "CSR row pointers: the first must be 0, got {first}")
            }
            Error::RowPtrDecreasing { row, start, end } => write!(
                f,
                "CSR row pointers decrease at row {row}: {start} then {end}"
            ),
            Error::RowPtrEnd { last, nnz } => write!(
                f,
                "CSR row pointers: the last is {last}, but there are {nnz} stored values"
            ),
            Error::IndexCount { values, indices } => write!(
                f,
                "CSR: {values} values but {indices} column indices (must be equal)"
            ),
            Error::IndexOutOfRange { row, index, cols } => write!(
                f,
                "CSR column index {index} in row {row} is out of range (the matrix has {cols} columns)"
            ),
            Error::IndicesNotIncreasing { row, prev, next } => write!(
                f,
                "CSR column indices of row {row} are not strictly increasing: {prev} then {next}"
            ),
            Error::IndexWidth { cols } => write!(
                f,
                "CSR: 16-bit column indices cannot address {cols} columns (at most 65536)"
            ),
            Error::TooLarge { what, len } => {
                write!(f, "CSR: {what} of {len} does not fit 32-bit row pointers")
            }
            Error::Shape {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected}, got {got}"),
            Error::Unsupported(s) => write!(f, "unsupported by the sparse engine: {s}"),
            Error::File {
                path,
                field,
                problem,
            } => write!(f, "{}: {field}: {problem}", path.display()),
            Error::Io { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Nn(msg) => f.write_str(msg),
            Error::CExport {
                field,
                expected,
                got,
            } => write!(f, "C export: {field}: expected {expected}, got {got}"),
        }
    }
}

impl std::error::Error for Error {}

/// The safetensors reader and writer report through `rcc_nn::Error`; its file and I/O
/// errors keep their path, field and problem.
impl From<rcc_nn::Error> for Error {
    fn from(e: rcc_nn::Error) -> Self {
        match e {
            rcc_nn::Error::File {
                path,
                field,
                problem,
            } => Error::File {
                path,
                field,
                problem,
            },
            rcc_nn::Error::Io { path, source } => Error::Io {
                path,
                message: source.to_string(),
            },
            other => Error::Nn(other.to_string()),
        }
    }
}

/// A file error.
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

/// A shape error.
pub(crate) fn shape<T>(
    what: impl Into<String>,
    expected: impl fmt::Display,
    got: impl fmt::Display,
) -> Result<T> {
    Err(Error::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    })
}
