//! A counting global allocator: the heap bytes each thread has allocated and not freed,
//! and their high-water mark, so that the training state a compression method adds
//! (ADMM's Z and U, masks, the prox's scratch) is measured by the allocator itself rather
//! than counted on paper (method.md section 2: "Measure it, don't just claim it"). The
//! resident set size cannot do this: the allocator reuses freed pages and keeps them
//! resident.
//!
//! The counts are per thread: the compressor's calls run on the training thread, so other
//! threads (rayon's workers between steps, other tests in a test binary) stay out of its
//! figures. A block freed on another thread than the one that allocated it moves the
//! counts of both, which is why they are signed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    // Const-initialised and without a destructor: usable from inside the allocator at any
    // point of a thread's life, and never allocating itself.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + by as isize;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - by as isize));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// only bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed through.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed through.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed through.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Heap bytes this thread allocated and not yet freed (net of frees of other threads'
/// blocks).
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Restarts this thread's high-water mark at its current live bytes, and returns them.
pub fn reset_peak() -> isize {
    let now = live();
    PEAK.with(|p| p.set(now));
    now
}

/// This thread's most live bytes since its last [`reset_peak`].
pub fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// The three figures, for the trainer (`rcc_train::HeapCounter`).
pub const COUNTER: rcc_train::HeapCounter = rcc_train::HeapCounter {
    live,
    reset_peak,
    peak,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_buffer_while_it_lives() {
        let base = reset_peak();
        let v = std::hint::black_box(vec![1u8; 1 << 20]);
        assert_eq!(live(), base + (1 << 20));
        drop(v);
        assert_eq!(live(), base);
        assert_eq!(peak(), base + (1 << 20));
        // Another thread's allocations are not this thread's.
        let other = std::thread::spawn(|| std::hint::black_box(vec![0u8; 1 << 16]).len());
        assert_eq!(other.join().unwrap(), 1 << 16);
        assert_eq!(peak(), base + (1 << 20));
    }
}
