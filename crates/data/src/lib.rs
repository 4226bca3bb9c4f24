//! rcc-data: the datasets rcc trains and evaluates on, read from the official files.
//!
//! Why a crate of its own: the robust-compression experiments (`../shared/method.md`)
//! run on MNIST, Fashion-MNIST and CIFAR-10, and every number they report depends on
//! reading exactly the official images and labels in their official order. The readers
//! here take the files as distributed (gzip-compressed IDX for the MNIST family, the
//! binary batches for CIFAR-10), validate every header field against the real file
//! size before trusting it, and report any problem as an [`Error`] naming the file, the
//! field and what was expected. Nothing here panics on bad input.
//!
//! - [`Dataset::load`] reads a split from a data root laid out as the official archives
//!   unpack (`mnist/`, `fashion-mnist/`, `cifar-10-batches-bin/`).
//! - [`Dataset::batch`] turns a list of indices into an f32 `[B, C, H, W]` tensor in
//!   [0, 1], optionally with CIFAR-style augmentation (random crop with 4-pixel zero
//!   padding, horizontal flip).
//! - [`epoch_order`] and [`Dataset::split_validation`] are seeded and depend on nothing
//!   else, so a run (or a resumed run) sees the same samples in the same order.
//! - [`idx`], [`cifar`]: the file formats (record layouts in their module docs).
//! - [`gzip`]: a from-scratch gzip/DEFLATE decoder, since the library crates use no
//!   compression crate.
//! - [`catalog`]: the official files (locations, sizes, SHA-256) `fetch-data` verifies.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod cifar;
mod dataset;
pub mod error;
pub mod gzip;
pub mod idx;

pub use dataset::{epoch_order, Dataset, DatasetKind, ParseNameError, Split, AUGMENT_PAD};
pub use error::{Error, Result};
