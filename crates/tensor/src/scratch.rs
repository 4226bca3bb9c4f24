//! A per-thread pool of f32 buffers, so the large per-step buffers (activations, patch
//! matrices, gradients) are reused across steps instead of freshly mapped and zeroed by
//! the allocator each time: on a 2-core machine, page faults and memsets of fresh
//! allocations cost as much as a layer's arithmetic.
//!
//! Safe Rust only: a buffer handed out has stale but initialised contents
//! ([`take`]) or zeros ([`zeroed`]).

use std::cell::RefCell;

/// Buffers kept per thread; beyond this, returned buffers are freed.
const MAX_POOLED: usize = 48;
/// Buffers smaller than this are not worth pooling.
const MIN_POOLED: usize = 1 << 12;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values with arbitrary (stale) contents: the caller overwrites all.
pub fn take(len: usize) -> Vec<f32> {
    if len >= MIN_POOLED {
        let found = POOL.with(|p| {
            let mut p = p.borrow_mut();
            // Best fit: the smallest pooled buffer that is large enough.
            let best = p
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| p.swap_remove(i))
        });
        if let Some(mut v) = found {
            v.resize(len, 0.0);
            v.truncate(len);
            return v;
        }
    }
    vec![0.0; len]
}

/// A buffer of `len` zeros.
pub fn zeroed(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// Returns a buffer to this thread's pool.
pub fn give(v: Vec<f32>) {
    if v.capacity() < MIN_POOLED {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(v);
        } else if let Some(smallest) = p.iter_mut().min_by_key(|b| b.capacity()) {
            if smallest.capacity() < v.capacity() {
                *smallest = v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn reuses_returned_buffers() {
        let a = super::take(10_000);
        let ptr = a.as_ptr();
        super::give(a);
        let b = super::zeroed(9_000);
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.iter().all(|&v| v == 0.0) && b.len() == 9_000);
    }
}
