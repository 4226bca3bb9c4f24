//! Per-thread pools of buffers, so the large per-step buffers (activations, patch
//! matrices, gradients, pooling indices) are reused across steps instead of freshly
//! mapped and zeroed by the allocator each time. Measured on lenet_adv:4: a training
//! step took about 560 page faults before the pools covered every large buffer.
//!
//! Safe Rust only: a buffer handed out has stale but initialised contents
//! ([`take`]) or zeros ([`zeroed`]).

use std::cell::RefCell;
use std::thread::LocalKey;

/// Buffers kept per thread and element type; beyond this, returned buffers are freed.
const MAX_POOLED: usize = 48;
/// Buffers smaller than this (in elements) are not worth pooling.
const MIN_POOLED: usize = 1 << 12;

type Pool<T> = RefCell<Vec<Vec<T>>>;

thread_local! {
    static F32: Pool<f32> = const { RefCell::new(Vec::new()) };
    static U32: Pool<u32> = const { RefCell::new(Vec::new()) };
}

fn take_from<T: Copy + Default>(pool: &'static LocalKey<Pool<T>>, len: usize) -> Vec<T> {
    if len >= MIN_POOLED {
        let found = pool.with(|p| {
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
            v.resize(len, T::default());
            v.truncate(len);
            return v;
        }
    }
    vec![T::default(); len]
}

fn give_to<T>(pool: &'static LocalKey<Pool<T>>, v: Vec<T>) {
    if v.capacity() < MIN_POOLED {
        return;
    }
    pool.with(|p| {
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

/// A buffer of `len` values with arbitrary (stale) contents: the caller overwrites all.
pub fn take(len: usize) -> Vec<f32> {
    take_from(&F32, len)
}

/// A buffer of `len` zeros.
pub fn zeroed(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// A copy of `src` in a pooled buffer.
pub fn copy_of(src: &[f32]) -> Vec<f32> {
    let mut v = take(src.len());
    v.copy_from_slice(src);
    v
}

/// Returns a buffer to this thread's pool.
pub fn give(v: Vec<f32>) {
    give_to(&F32, v)
}

/// An index buffer (stale contents), e.g. max-pooling's argmax.
pub fn take_u32(len: usize) -> Vec<u32> {
    take_from(&U32, len)
}

pub fn give_u32(v: Vec<u32>) {
    give_to(&U32, v)
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
        let i = super::take_u32(5_000);
        let ptr = i.as_ptr();
        super::give_u32(i);
        let again = super::take_u32(4_096);
        assert_eq!(again.as_ptr(), ptr);
    }
}
