//! Readers for the binary version of CIFAR-10.
//!
//! # Format
//!
//! Krizhevsky's `cifar-10-binary.tar.gz` (<https://www.cs.toronto.edu/~kriz/cifar.html>)
//! unpacks to `cifar-10-batches-bin/` with `data_batch_1.bin` .. `data_batch_5.bin`
//! (training, 10,000 records each), `test_batch.bin` (10,000 records) and
//! `batches.meta.txt`. A batch file is a plain sequence of 3,073-byte records with no
//! header:
//!
//! ```text
//! offset  bytes  field
//! 0       1      label, 0..=9
//! 1       1024   red channel, 32x32, row-major
//! 1025    1024   green channel
//! 2049    1024   blue channel
//! ```
//!
//! so the 3,072 pixel bytes of a record are already an image in CHW order and are
//! copied as they are. `batches.meta.txt` lists the 10 class names, one per line
//! (`airplane` .. `truck`), followed by blank lines.
//!
//! [`read_batch`] checks that the file is a whole, non-zero number of records and that
//! every label is below 10, naming the record when one is not.

use crate::error::{format_err, Result};
use std::path::Path;

/// Pixel bytes per CIFAR-10 image: 3 channels of 32x32.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes per record: one label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// The class names of CIFAR-10, in label order, as `batches.meta.txt` lists them.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Parses one batch file: returns `(images, labels)`, the images as `N * 3072` bytes
/// (each image as R, G, B planes of 32x32, i.e. CHW) and the `N` labels. `path` is only
/// used in error messages.
pub fn read_batch(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    if bytes.is_empty() {
        return format_err(
            path,
            "size",
            format!("the file is empty; a CIFAR-10 batch holds {RECORD_BYTES}-byte records"),
        );
    }
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return format_err(
            path,
            "size",
            format!(
                "the file is {} bytes, not a multiple of the {RECORD_BYTES}-byte record (1 label byte + {IMAGE_BYTES} pixel bytes): {} whole records and {} bytes over; the file is truncated or not a CIFAR-10 binary batch",
                bytes.len(),
                bytes.len() / RECORD_BYTES,
                bytes.len() % RECORD_BYTES
            ),
        );
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if label > 9 {
            return format_err(
                path,
                format!("label of record {i}"),
                format!(
                    "expected a class 0..=9, found {label} (at byte offset {})",
                    i * RECORD_BYTES
                ),
            );
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok((images, labels))
}

/// Parses `batches.meta.txt`: the non-blank lines, trimmed, in order (the class names).
pub fn read_meta(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
