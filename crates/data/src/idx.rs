//! Readers for the IDX files of MNIST and Fashion-MNIST.
//!
//! # Format
//!
//! IDX is LeCun's format for MNIST (<http://yann.lecun.com/exdb/mnist/>), also used
//! unchanged by Fashion-MNIST. All header integers are 32-bit big-endian:
//!
//! ```text
//! images (*-images-idx3-ubyte)          labels (*-labels-idx1-ubyte)
//! offset  field                         offset  field
//! 0       magic 0x00000803 (2051)       0       magic 0x00000801 (2049)
//! 4       number of images N            4       number of labels N
//! 8       rows (28)                     8       N labels, one unsigned byte each
//! 12      columns (28)
//! 16      N * rows * columns pixels,
//!         unsigned bytes, image after
//!         image, each row-major
//! ```
//!
//! The magic number's third byte is the element type (0x08 = unsigned byte) and its
//! fourth the number of dimensions (3 or 1).
//!
//! The readers check the magic number, that no dimension is zero, and that the file
//! holds exactly the bytes the header promises: a short file is reported as truncated,
//! a long one as trailing data. The expected size is computed from the header with
//! checked arithmetic and compared with the real length before anything is allocated,
//! so a corrupt header cannot cause a huge allocation. Dataset-specific checks (28x28
//! images, labels below 10, as many labels as images) are made by
//! [`Dataset::load`](crate::Dataset::load), which knows both files.

use crate::error::{format_err, Result};
use std::path::Path;

/// Magic number of an IDX file of unsigned-byte 3-d data (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte 1-d data (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Parses an IDX image file (already decompressed): returns `(n, rows, cols, pixels)`,
/// with `pixels.len() == n * rows * cols`. `path` is only used in error messages.
pub fn read_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (n, rows, cols) = images_header(bytes, path)?;
    Ok((n, rows, cols, bytes[IMAGES_HEADER..].to_vec()))
}

/// Parses an IDX label file (already decompressed): returns the labels, one byte each.
/// Their range is not checked here (see [`Dataset::load`](crate::Dataset::load)).
pub fn read_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    labels_header(bytes, path)?;
    Ok(bytes[LABELS_HEADER..].to_vec())
}

/// [`read_images`] that reuses the file's buffer for the pixels (no second copy of a
/// 47 MB file).
pub(crate) fn read_images_owned(
    mut bytes: Vec<u8>,
    path: &Path,
) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (n, rows, cols) = images_header(&bytes, path)?;
    bytes.drain(..IMAGES_HEADER);
    Ok((n, rows, cols, bytes))
}

/// [`read_labels`] that reuses the file's buffer.
pub(crate) fn read_labels_owned(mut bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    labels_header(&bytes, path)?;
    bytes.drain(..LABELS_HEADER);
    Ok(bytes)
}

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

/// Validates an image file's header against its length; returns `(n, rows, cols)`.
fn images_header(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize)> {
    const HEADER: usize = IMAGES_HEADER;
    check_magic(bytes, path, IMAGES_MAGIC, "images")?;
    if bytes.len() < HEADER {
        return format_err(
            path,
            "header",
            format!(
                "an IDX image header is {HEADER} bytes (magic, count, rows, columns), the file has only {}: it is truncated",
                bytes.len()
            ),
        );
    }
    let n = be_u32(bytes, 4) as usize;
    let rows = be_u32(bytes, 8) as usize;
    let cols = be_u32(bytes, 12) as usize;
    if rows == 0 || cols == 0 {
        return format_err(
            path,
            "dimensions",
            format!("the header says {rows}x{cols} images; rows and columns must be at least 1"),
        );
    }
    let sizes = rows.checked_mul(cols).and_then(|per_image| {
        let expected = n.checked_mul(per_image)?.checked_add(HEADER)?;
        Some((per_image, expected))
    });
    let Some((per_image, expected)) = sizes else {
        return format_err(
            path,
            "header",
            format!(
                "{n} images of {rows}x{cols} pixels is more bytes than this machine can address: the header is corrupt"
            ),
        );
    };
    check_size(
        bytes.len(),
        expected,
        HEADER,
        per_image,
        path,
        &format!("{n} images of {rows}x{cols} pixels"),
        "image",
    )?;
    Ok((n, rows, cols))
}

/// Validates a label file's header against its length; returns the count.
fn labels_header(bytes: &[u8], path: &Path) -> Result<usize> {
    const HEADER: usize = LABELS_HEADER;
    check_magic(bytes, path, LABELS_MAGIC, "labels")?;
    if bytes.len() < HEADER {
        return format_err(
            path,
            "header",
            format!(
                "an IDX label header is {HEADER} bytes (magic, count), the file has only {}: it is truncated",
                bytes.len()
            ),
        );
    }
    let n = be_u32(bytes, 4) as usize;
    let Some(expected) = n.checked_add(HEADER) else {
        return format_err(
            path,
            "header",
            format!(
                "{n} labels is more bytes than this machine can address: the header is corrupt"
            ),
        );
    };
    check_size(
        bytes.len(),
        expected,
        HEADER,
        1,
        path,
        &format!("{n} labels"),
        "label",
    )?;
    Ok(n)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn magic_name(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => ", the IDX images magic",
        LABELS_MAGIC => ", the IDX labels magic",
        0x1f8b_0000..=0x1f8b_ffff => ", gzip data: decompress the file first",
        _ => "",
    }
}

fn check_magic(bytes: &[u8], path: &Path, expected: u32, what: &str) -> Result<()> {
    let Some(m) = bytes.first_chunk::<4>() else {
        return format_err(
            path,
            "magic number",
            format!(
                "the file has only {} bytes; an IDX {what} file starts with the 4-byte magic number {expected} ({expected:#010x})",
                bytes.len()
            ),
        );
    };
    let found = u32::from_be_bytes(*m);
    if found != expected {
        return format_err(
            path,
            "magic number",
            format!(
                "expected {expected} ({expected:#010x}, IDX {what}), found {found} ({found:#010x}{})",
                magic_name(found)
            ),
        );
    }
    Ok(())
}

/// Compares the real file size with the one the header implies (`header` bytes of
/// header, then records of `record` bytes).
fn check_size(
    actual: usize,
    expected: usize,
    header: usize,
    record: usize,
    path: &Path,
    promised: &str,
    record_name: &str,
) -> Result<()> {
    if actual < expected {
        let whole = actual.saturating_sub(header) / record;
        return format_err(
            path,
            "size",
            format!(
                "the header promises {promised} ({expected} bytes with the header), the file has {actual} bytes (only {whole} whole {record_name}s): it is truncated"
            ),
        );
    }
    if actual > expected {
        return format_err(
            path,
            "size",
            format!(
                "the header promises {promised} ({expected} bytes with the header), the file has {actual} bytes: {} bytes of trailing data after the last {record_name}",
                actual - expected
            ),
        );
    }
    Ok(())
}
