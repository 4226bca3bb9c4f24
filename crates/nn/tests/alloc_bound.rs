//! A model file's metadata names its arch, and so the size of the model: reading a file
//! must not allocate for that size before the file is found to hold the tensors (found
//! while writing the `model` fuzz target, docs/reliability.md). A counting allocator
//! records the largest single allocation while a 70-byte file naming the largest arch
//! is read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only
// records sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

#[test]
fn a_files_arch_does_not_size_an_allocation_before_its_tensors_are_found() {
    let mut st = rcc_nn::safetensors::SafeTensors::new();
    st.metadata.insert("arch".into(), "vgg16:64".into());
    let bytes = st.to_bytes().unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let err = rcc_nn::Model::parse(&bytes, std::path::Path::new("tiny.safetensors"), None);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(err.is_err());
    // vgg16:64 has 235 M parameters (941 MB of f32); a file of 70 bytes gets at most a
    // few kilobytes of bookkeeping.
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}
