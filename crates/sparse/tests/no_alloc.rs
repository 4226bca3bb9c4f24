//! `SparseModel::infer` allocates nothing: the activation buffers are planned when the
//! model is built. A counting global allocator (this test binary only) checks it.

use rcc_nn::{Arch, Model};
use rcc_sparse::{KernelChoice, ModelSpec, SparseModel};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread: the test harness's own threads allocate at any time (seen under load),
    // and only this thread's calls to `infer` are under test. Const-initialised and
    // without a destructor, so it is usable from inside the allocator.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn infer_allocates_nothing() {
    for arch in [Arch::Lenet5, Arch::LenetAdv(4), Arch::Vgg16(1)] {
        let mut m = Model::new(arch, 1);
        // Half the weights zeroed, so that the per-layer choice mixes both kernel kinds.
        for (i, w) in m.params.iter_mut().enumerate() {
            if i % 3 != 0 {
                *w = 0.0;
            }
        }
        let spec = ModelSpec::from_model(&m).unwrap();
        for choice in [
            KernelChoice::Auto,
            KernelChoice::Sparse,
            KernelChoice::Dense,
        ] {
            let sm = SparseModel::build(&spec, choice).unwrap();
            let x = vec![0.5; 2 * sm.in_len()];
            let mut out = vec![0.0; 2 * sm.out_len()];
            sm.infer(&x, &mut out).unwrap(); // warm (lazy CPU feature detection)
            let before = allocs();
            for _ in 0..3 {
                sm.infer(&x, &mut out).unwrap();
            }
            assert_eq!(allocs(), before, "{arch} {choice:?}");
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
}
