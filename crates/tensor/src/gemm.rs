//! Matrix multiply: a thin, safe wrapper over `matrixmultiply::sgemm`, a parallel
//! split of it, and the naive reference kernel the fast ones are tested against.
//!
//! Operands are described by a slice plus row and column strides, so a transposed
//! operand is just swapped strides (no copy).

use rayon::prelude::*;

/// A matrix operand: `m[i, j] = data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix.
    pub fn rm(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose, by swapping strides.
    pub fn t(self) -> Mat<'a> {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    /// Largest index touched, +1 (0 for an empty matrix).
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `c = alpha * a @ b + beta * c`, with `c` row-major `[a.rows, b.cols]` (row stride `ldc`).
///
/// Single-threaded. Panics (a programming error, never user input) if the operands do not fit.
pub fn sgemm(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, n) = (a.rows, b.cols);
    assert!(m == 0 || n == 0 || (m - 1) * ldc + n <= c.len());
    // SAFETY: the assert above puts every element `i * ldc + j` (i < m, j < n) inside
    // `c`, which the `&mut` borrow gives this call alone.
    unsafe { sgemm_raw(alpha, a, b, beta, c.as_mut_ptr(), ldc) }
}

/// [`sgemm`] on a raw `c`, so that parallel tasks can each write their own disjoint
/// block of one matrix without holding overlapping `&mut` slices of it. Checks `a` and
/// `b` against their slices itself.
///
/// # Safety
///
/// `c` must be valid for reads and writes at every `c + i * ldc + j` with `i < a.rows`,
/// `j < b.cols`, and nothing else may access those elements during the call.
unsafe fn sgemm_raw(alpha: f32, a: Mat, b: Mat, beta: f32, c: *mut f32, ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "sgemm: inner dimensions differ");
    assert!(a.extent() <= a.data.len() && b.extent() <= b.data.len());
    assert!(n <= ldc || m <= 1);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: in the caller's block (i < m, j < n).
                unsafe { *c.add(i * ldc + j) *= beta };
            }
        }
        return;
    }
    // SAFETY: the asserts above bound every index matrixmultiply computes from (m, k, n)
    // and the strides inside `a` and `b`; the caller guarantees `c`'s block.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c,
            ldc as isize,
            1,
        )
    }
}

/// Work (in multiply-adds) below which a GEMM is not worth splitting across threads.
const PAR_MIN_MACS: usize = 1 << 18;

/// Like [`sgemm`] with `ldc = b.cols`, split across the current rayon pool into one
/// block per thread: of rows of `a` and `c` when `a` is the taller operand, else of
/// columns of `b` and `c`. Every block packs the whole of the operand it does not split,
/// so the split goes along the dimension whose unsplit operand is the smaller one to
/// re-pack (`k*n` for a row split, `m*k` for a column split); more blocks than threads
/// would only re-pack it more often.
///
/// Every element of `c` is computed by the same kernel over the same k-order whatever the
/// split, so the result is bit-identical for any thread count.
pub fn par_sgemm(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * k * n < PAR_MIN_MACS {
        return sgemm(alpha, a, b, beta, c, n);
    }
    if m >= n {
        // Split rows of a and c: contiguous chunks of c.
        let block = m.div_ceil(threads).next_multiple_of(16).min(m);
        c[..m * n]
            .par_chunks_mut(block * n)
            .enumerate()
            .for_each(|(i, cb)| {
                let r0 = i * block;
                let rows = cb.len() / n;
                let ab = Mat {
                    data: &a.data[r0 * a.rs..],
                    rows,
                    ..a
                };
                sgemm(alpha, ab, b, beta, cb, n);
            });
    } else {
        // Split columns of b and c: column blocks of c are strided, so hand each task a
        // disjoint column range through a raw pointer.
        let block = n.div_ceil(threads).next_multiple_of(16).min(n);
        assert!(
            m * n <= c.len(),
            "par_sgemm: c holds {} values for [{m}, {n}]",
            c.len()
        );
        let cptr = SyncPtr(c.as_mut_ptr());
        (0..n.div_ceil(block)).into_par_iter().for_each(|i| {
            let c0 = i * block;
            let cols = block.min(n - c0);
            let bb = Mat {
                data: &b.data[c0 * b.cs..],
                cols,
                ..b
            };
            // SAFETY: this task's block is rows 0..m, columns c0..c0 + cols of `c`
            // (row stride n): inside `c` by the assert above, and disjoint from every
            // other task's columns; `c` is borrowed mutably for the whole split, and no
            // `&mut` slice of it is made while the tasks run.
            unsafe { sgemm_raw(alpha, a, bb, beta, cptr.get().add(c0), n) };
        });
    }
}

/// A raw pointer that parallel tasks may share.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: the pointer is only dereferenced by `par_sgemm`'s tasks, each inside its own
// disjoint block of the matrix it points into, while that matrix is mutably borrowed.
unsafe impl Send for SyncPtr {}
// SAFETY: as for Send: shared between tasks that write disjoint elements.
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Naive reference: `c = alpha * a @ b + beta * c`, accumulating in f64.
pub fn sgemm_naive(alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32], ldc: usize) {
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0.0f64;
            for p in 0..a.cols {
                s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
            }
            let cij = &mut c[i * ldc + j];
            *cij = alpha * s as f32 + if beta == 0.0 { 0.0 } else { beta * *cij };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn sgemm_matches_naive(m in 1usize..40, k in 0usize..40, n in 1usize..40,
                               ta: bool, tb: bool, beta in prop::sample::select(vec![0.0f32, 1.0, 0.5]),
                               seed in 0u64..1000) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let ad: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let bd: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let a = if ta { Mat::rm(&ad, k, m).t() } else { Mat::rm(&ad, m, k) };
            let b = if tb { Mat::rm(&bd, n, k).t() } else { Mat::rm(&bd, k, n) };
            let c0: Vec<f32> = (0..m * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let (mut c1, mut c2) = (c0.clone(), c0.clone());
            sgemm(0.7, a, b, beta, &mut c1, n);
            sgemm_naive(0.7, a, b, beta, &mut c2, n);
            prop_assert!(close(&c1, &c2, 1e-5));
        }
    }

    #[test]
    fn par_sgemm_is_bit_identical_to_sequential() {
        for &(m, k, n) in &[
            (50, 500, 640),
            (20, 25, 5000),
            (700, 64, 30),
            (3, 1000, 2000),
        ] {
            let ad: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
                .collect();
            let bd: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104729) % 1000) as f32 / 991.0 - 0.5)
                .collect();
            let mut c1 = vec![0.25; m * n];
            let mut c2 = c1.clone();
            sgemm(1.0, Mat::rm(&ad, m, k), Mat::rm(&bd, k, n), 1.0, &mut c1, n);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            pool.install(|| par_sgemm(1.0, Mat::rm(&ad, m, k), Mat::rm(&bd, k, n), 1.0, &mut c2));
            assert!(
                c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{k}x{n}"
            );
        }
    }
}
