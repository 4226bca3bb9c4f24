//! Compressed sparse rows with 16- or 32-bit column indices.

use crate::error::{shape, Error, Result};

/// Column indices: 16-bit when the column count fits (at most 65536 columns), else 32-bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColIdx {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl ColIdx {
    pub fn len(&self) -> usize {
        match self {
            ColIdx::U16(v) => v.len(),
            ColIdx::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index `k` as usize.
    pub fn get(&self, k: usize) -> usize {
        match self {
            ColIdx::U16(v) => v[k] as usize,
            ColIdx::U32(v) => v[k] as usize,
        }
    }
    /// Bytes of one index.
    pub fn width(&self) -> usize {
        match self {
            ColIdx::U16(_) => 2,
            ColIdx::U32(_) => 4,
        }
    }
    /// All indices as usize (for building derived tables, not for hot loops).
    pub fn to_usize(&self) -> Vec<usize> {
        match self {
            ColIdx::U16(v) => v.iter().map(|&i| i as usize).collect(),
            ColIdx::U32(v) => v.iter().map(|&i| i as usize).collect(),
        }
    }
}

/// A `rows x cols` f32 matrix in CSR form. Always valid: every constructor validates, and
/// the fields are private, so the kernels can rely on the invariants of [`Csr::validate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<u32>,
    col_idx: ColIdx,
    values: Vec<f32>,
}

/// Whether 16-bit indices can address `cols` columns.
pub fn fits_u16(cols: usize) -> bool {
    cols <= u16::MAX as usize + 1
}

impl Csr {
    /// The exact non-zeros of a row-major dense `rows x cols` matrix (`-0.0` counts as
    /// zero, NaN as non-zero).
    pub fn from_dense(weights: &[f32], rows: usize, cols: usize) -> Result<Csr> {
        if rows.checked_mul(cols) != Some(weights.len()) {
            return shape(
                "Csr::from_dense",
                format!("{rows} x {cols} values"),
                weights.len(),
            );
        }
        let nnz = weights.iter().filter(|&&v| v != 0.0).count();
        if nnz > u32::MAX as usize {
            return Err(Error::TooLarge {
                what: "a non-zero count",
                len: nnz,
            });
        }
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut values = Vec::with_capacity(nnz);
        let mut idx = Vec::with_capacity(nnz);
        row_ptr.push(0u32);
        for r in 0..rows {
            for (c, &v) in weights[r * cols..(r + 1) * cols].iter().enumerate() {
                if v != 0.0 {
                    values.push(v);
                    idx.push(c);
                }
            }
            row_ptr.push(values.len() as u32);
        }
        let col_idx = if fits_u16(cols) {
            ColIdx::U16(idx.into_iter().map(|c| c as u16).collect())
        } else {
            ColIdx::U32(idx.into_iter().map(|c| c as u32).collect())
        };
        Csr::from_parts(rows, cols, row_ptr, col_idx, values)
    }

    /// A matrix from its arrays, validated (see [`Csr::validate`]).
    pub fn from_parts(
        rows: usize,
        cols: usize,
        row_ptr: Vec<u32>,
        col_idx: ColIdx,
        values: Vec<f32>,
    ) -> Result<Csr> {
        let m = Csr {
            rows,
            cols,
            row_ptr,
            col_idx,
            values,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks every invariant the kernels rely on: `rows + 1` row pointers starting at 0,
    /// non-decreasing, ending at nnz; as many indices as values; indices that fit their
    /// width, lie below `cols` and strictly increase within each row.
    pub fn validate(&self) -> Result<()> {
        if self.row_ptr.len() != self.rows + 1 {
            return Err(Error::RowPtrLen {
                rows: self.rows,
                len: self.row_ptr.len(),
            });
        }
        if self.values.len() != self.col_idx.len() {
            return Err(Error::IndexCount {
                values: self.values.len(),
                indices: self.col_idx.len(),
            });
        }
        if self.values.len() > u32::MAX as usize {
            return Err(Error::TooLarge {
                what: "a non-zero count",
                len: self.values.len(),
            });
        }
        if matches!(self.col_idx, ColIdx::U16(_)) && !fits_u16(self.cols) {
            return Err(Error::IndexWidth { cols: self.cols });
        }
        if self.row_ptr[0] != 0 {
            return Err(Error::RowPtrStart {
                first: self.row_ptr[0],
            });
        }
        for (row, w) in self.row_ptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(Error::RowPtrDecreasing {
                    row,
                    start: w[0],
                    end: w[1],
                });
            }
        }
        let last = self.row_ptr[self.rows];
        if last as usize != self.values.len() {
            return Err(Error::RowPtrEnd {
                last,
                nnz: self.values.len(),
            });
        }
        for row in 0..self.rows {
            let mut prev: Option<usize> = None;
            for k in self.row_range(row) {
                let index = self.col_idx.get(k);
                if index >= self.cols {
                    return Err(Error::IndexOutOfRange {
                        row,
                        index,
                        cols: self.cols,
                    });
                }
                if let Some(prev) = prev.filter(|&p| p >= index) {
                    return Err(Error::IndicesNotIncreasing {
                        row,
                        prev,
                        next: index,
                    });
                }
                prev = Some(index);
            }
        }
        Ok(())
    }

    /// The dense row-major `rows x cols` matrix.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            for k in self.row_range(r) {
                d[r * self.cols + self.col_idx.get(k)] = self.values[k];
            }
        }
        d
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Stored values.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    /// Fraction of zeros, in [0, 1].
    pub fn sparsity(&self) -> f64 {
        let n = self.rows * self.cols;
        if n == 0 {
            0.0
        } else {
            1.0 - self.nnz() as f64 / n as f64
        }
    }
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    pub fn col_idx(&self) -> &ColIdx {
        &self.col_idx
    }
    pub fn row_ptr(&self) -> &[u32] {
        &self.row_ptr
    }
    /// The positions in `values` / `col_idx` of row `r`'s entries.
    pub fn row_range(&self, r: usize) -> std::ops::Range<usize> {
        self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize
    }
    /// Storage: values, column indices and row pointers, in bytes.
    pub fn bytes(&self) -> usize {
        self.values.len() * 4 + self.col_idx.len() * self.col_idx.width() + self.row_ptr.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Csr {
        // [[1 0 2 0], [0 0 0 0], [0 3 0 4]]
        let d = [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 4.0];
        Csr::from_dense(&d, 3, 4).unwrap()
    }

    #[test]
    fn from_dense_layout() {
        let m = sample();
        assert_eq!(m.row_ptr(), &[0, 2, 2, 4]);
        assert_eq!(m.col_idx(), &ColIdx::U16(vec![0, 2, 1, 3]));
        assert_eq!(m.values(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.nnz(), 4);
        assert_eq!(m.bytes(), 4 * 4 + 4 * 2 + 4 * 4);
        assert!((m.sparsity() - 8.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn index_width_follows_column_count() {
        let cols = 65_536;
        let mut d = vec![0.0; cols];
        d[cols - 1] = 1.0;
        let m = Csr::from_dense(&d, 1, cols).unwrap();
        assert_eq!(m.col_idx(), &ColIdx::U16(vec![65_535]));
        let cols = 65_537;
        let mut d = vec![0.0; cols];
        d[cols - 1] = 1.0;
        let m = Csr::from_dense(&d, 1, cols).unwrap();
        assert_eq!(m.col_idx(), &ColIdx::U32(vec![65_536]));
        assert_eq!(m.to_dense(), d);
        assert_eq!(
            Csr::from_parts(1, cols, vec![0, 1], ColIdx::U16(vec![0]), vec![1.0]),
            Err(Error::IndexWidth { cols })
        );
    }

    #[test]
    fn empty_shapes() {
        for (r, c) in [(0, 0), (0, 5), (3, 0)] {
            let m = Csr::from_dense(&vec![0.0; r * c], r, c).unwrap();
            assert_eq!((m.nnz(), m.to_dense().len()), (0, r * c));
        }
        assert!(matches!(
            Csr::from_dense(&[1.0; 5], 2, 3),
            Err(Error::Shape { .. })
        ));
    }

    /// Each malformed case is rejected with its own error.
    #[test]
    fn validate_rejects_each_malformed_case() {
        let idx = |v: &[u16]| ColIdx::U16(v.to_vec());
        let vals = |n: usize| vec![1.0; n];
        let cases: Vec<(Result<Csr>, Error)> = vec![
            (
                Csr::from_parts(3, 4, vec![0, 2, 4], idx(&[0, 2, 1, 3]), vals(4)),
                Error::RowPtrLen { rows: 3, len: 3 },
            ),
            (
                Csr::from_parts(3, 4, vec![1, 2, 2, 4], idx(&[0, 2, 1, 3]), vals(4)),
                Error::RowPtrStart { first: 1 },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 3, 2, 4], idx(&[0, 2, 1, 3]), vals(4)),
                Error::RowPtrDecreasing {
                    row: 1,
                    start: 3,
                    end: 2,
                },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 2, 2, 3], idx(&[0, 2, 1, 3]), vals(4)),
                Error::RowPtrEnd { last: 3, nnz: 4 },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 2, 2, 4], idx(&[0, 2, 1]), vals(4)),
                Error::IndexCount {
                    values: 4,
                    indices: 3,
                },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 2, 2, 4], idx(&[0, 2, 1, 4]), vals(4)),
                Error::IndexOutOfRange {
                    row: 2,
                    index: 4,
                    cols: 4,
                },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 2, 2, 4], idx(&[2, 0, 1, 3]), vals(4)),
                Error::IndicesNotIncreasing {
                    row: 0,
                    prev: 2,
                    next: 0,
                },
            ),
            (
                Csr::from_parts(3, 4, vec![0, 2, 2, 4], idx(&[0, 2, 3, 3]), vals(4)),
                Error::IndicesNotIncreasing {
                    row: 2,
                    prev: 3,
                    next: 3,
                },
            ),
            (
                Csr::from_parts(
                    3,
                    4,
                    vec![0, 2, 2, 4],
                    ColIdx::U32(vec![0, 2, 1, 70_000]),
                    vals(4),
                ),
                Error::IndexOutOfRange {
                    row: 2,
                    index: 70_000,
                    cols: 4,
                },
            ),
        ];
        for (got, want) in cases {
            let msg = want.to_string();
            assert_eq!(got, Err(want));
            assert!(msg.starts_with("CSR"), "{msg}");
        }
        // A row-pointer run past the values would be caught as RowPtrEnd, never indexed.
        assert_eq!(
            Csr::from_parts(1, 4, vec![0, 9], idx(&[0]), vals(1)),
            Err(Error::RowPtrEnd { last: 9, nnz: 1 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn dense_round_trip(rows in 0usize..20, cols in 0usize..40, density in 0.0f64..1.0, seed: u64) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d: Vec<f32> = (0..rows * cols)
                .map(|_| if rng.gen_bool(density) { rng.gen_range(-1.0f32..1.0) } else { 0.0 })
                .collect();
            let m = Csr::from_dense(&d, rows, cols).unwrap();
            prop_assert_eq!(m.to_dense(), d.clone());
            prop_assert_eq!(m.nnz(), d.iter().filter(|&&v| v != 0.0).count());
            prop_assert!(m.validate().is_ok());
            let again = Csr::from_parts(rows, cols, m.row_ptr().to_vec(), m.col_idx().clone(), m.values().to_vec()).unwrap();
            prop_assert_eq!(again, m);
        }
    }
}
