//! Test helpers: seeded random tensors and the central-difference gradient check.

use crate::tape::{Mode, Tape, Var};
use crate::{Result, Tensor};
use rand::{Rng, SeedableRng};

pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut rng)
}

/// Random values in `[-1, -margin] u [margin, 1]`: away from ReLU's kink at 0.
pub fn away_from_zero(shape: &[usize], seed: u64, margin: f32) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Tensor::from_fn(shape, |_| {
        let m: f32 = rng.gen_range(margin..1.0);
        if rng.gen::<bool>() {
            m
        } else {
            -m
        }
    })
}

/// Distinct values (a shuffled grid with gaps of 1/n): no ties in a max-pool window.
pub fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n = crate::tensor::numel(shape);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 / n as f32) * 2.0 - 1.0).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.gen_range(0..=i));
    }
    Tensor::new(shape, v).unwrap()
}

/// max |a - b| <= tol * (1 + max |b|): a norm-wise relative comparison.
pub fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + scale))
}

/// Checks every input gradient of `f` against central differences of
/// `L = sum(f(inputs) * G)` for a fixed random `G` (so every output element matters).
///
/// The objective is accumulated in f64; with eps = 1e-2 on unit-scale inputs the f32
/// rounding error of the difference quotient is about 1e-4, far below the tolerance.
pub fn check_grads(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Result<Var>) {
    let eps = 1e-2f32;
    let objective = |ins: &[Tensor], g: &[f32]| -> f64 {
        let mut t = Tape::new(&[], Mode::InputGrad);
        let vars: Vec<Var> = ins.iter().map(|x| t.input(x.clone(), false)).collect();
        let y = f(&mut t, &vars).unwrap();
        t.value(y)
            .iter()
            .zip(g)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    // Analytic gradients, seeded with G.
    let mut t = Tape::new(&[], Mode::InputGrad);
    let vars: Vec<Var> = inputs.iter().map(|x| t.input(x.clone(), true)).collect();
    let y = f(&mut t, &vars).unwrap();
    let g = rand_tensor(t.shape(y), 99).into_data();
    let grads = t.backward_seeded(y, &g, None).unwrap();
    for (k, x) in inputs.iter().enumerate() {
        let analytic = grads
            .get(vars[k])
            .map(|s| s.to_vec())
            .unwrap_or_else(|| vec![0.0; x.numel()]);
        let numeric: Vec<f32> = (0..x.numel())
            .map(|i| {
                let mut ins = inputs.to_vec();
                ins[k].data_mut()[i] += eps;
                let up = objective(&ins, &g);
                ins[k].data_mut()[i] -= 2.0 * eps;
                let down = objective(&ins, &g);
                ((up - down) / (2.0 * eps as f64)) as f32
            })
            .collect();
        assert!(
            close(&analytic, &numeric, 2e-3),
            "input {k}: analytic {analytic:?}\n numeric {numeric:?}"
        );
    }
}

/// Uniform random values in `[lo, hi)`, from a seed.
pub fn rand_in(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Tensor::rand_uniform(shape, lo, hi, &mut rng)
}

/// Widens to f64 (for the naive references).
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Rounds to f32 (a naive reference's result, for [`close`]).
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// [`close`] as a proptest check: the failure names the quantity, the largest
/// difference and both vectors (truncated).
pub fn prop_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    tol: f32,
) -> std::result::Result<(), proptest::test_runner::TestCaseError> {
    if close(got, want, tol) {
        return Ok(());
    }
    let worst = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (a, b))| (i, (a - b).abs()))
        .fold((0, 0f32), |m, d| if d.1 > m.1 { d } else { m });
    let head = |v: &[f32]| format!("{:?}", &v[..v.len().min(12)]);
    Err(proptest::test_runner::TestCaseError::fail(format!(
        "{what}: lengths {} vs {}, largest difference {} at {}\n got  {}\n want {}",
        got.len(),
        want.len(),
        worst.1,
        worst.0,
        head(got),
        head(want)
    )))
}

/// The gradient of `v`, or a proptest failure if the tape gave it none.
pub fn grad_of(
    grads: &crate::Grads,
    v: Var,
    what: &str,
) -> std::result::Result<Vec<f32>, proptest::test_runner::TestCaseError> {
    grads
        .get(v)
        .map(|g| g.to_vec())
        .ok_or_else(|| proptest::test_runner::TestCaseError::fail(format!("{what}: no gradient")))
}

/// Central difference `(f(x + h e_i) - f(x - h e_i)) / 2h` of an f64 function: checks a
/// naive, hand-derived gradient independently of it.
pub fn central_diff(f: impl Fn(&[f64]) -> f64, x: &[f64], i: usize, h: f64) -> f64 {
    let mut xp = x.to_vec();
    xp[i] += h;
    let up = f(&xp);
    xp[i] -= 2.0 * h;
    let down = f(&xp);
    (up - down) / (2.0 * h)
}

/// Row-major strides of a shape (the multi-index arithmetic of the naive references).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * shape[d + 1];
    }
    st
}

/// Naive f64 log-softmax of each row of `[N, K]` (max subtracted, then log-sum-exp).
pub fn log_softmax_f64(z: &[f64], k: usize) -> Vec<f64> {
    z.chunks(k)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            r.iter().map(move |v| v - lse)
        })
        .collect()
}
