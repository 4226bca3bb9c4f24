//! Thread control. Kernels use rayon inside whatever pool is current, so a caller picks
//! the thread count by running its work inside [`pool`]'s `install`.
//!
//! Every kernel splits work so that each output element is computed in a fixed order
//! whatever the split: results are bit-identical for any thread count.

use crate::error::{Error, Result};

/// A rayon pool with `threads` workers (0 = one per core).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Threads(e.to_string()))
}
