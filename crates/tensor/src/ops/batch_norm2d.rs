//! Batch normalisation over the channels of NCHW activations, PyTorch's conventions.
//!
//! - Train: normalise with the batch mean and the **biased** batch variance over
//!   (N, H, W); the gradient flows through both. The batch mean and **unbiased**
//!   variance are returned for the running-statistics update (momentum 0.1 in
//!   [`update_running`]).
//! - Eval: normalise with the running statistics, no update; then the op is affine.
//!
//! `y = xhat * gamma + beta`, `xhat = (x - mean) * invstd`, `invstd = 1/sqrt(var + eps)`.
//! Local derivatives (train), with m = N*H*W per channel:
//! `dbeta = sum dy`, `dgamma = sum dy*xhat`,
//! `dx = gamma*invstd * (dy - dbeta/m - xhat * dgamma/m)`; in eval `dx = gamma*invstd*dy`.
//! Channel sums are accumulated in f64.

use crate::error::{invalid, shape_err, Result};
use crate::tape::{GradStore, Op, Tape, Values, Var};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub enum BnMode<'a> {
    /// Batch statistics.
    Train,
    /// Running statistics.
    Eval { mean: &'a [f32], var: &'a [f32] },
}

/// The batch's per-channel mean and unbiased variance (what the running update uses).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    pub var_unbiased: Vec<f32>,
}

/// `running = (1 - momentum) * running + momentum * batch`, PyTorch's update.
pub fn update_running(mean: &mut [f32], var: &mut [f32], stats: &BatchStats, momentum: f32) {
    for (r, &b) in mean.iter_mut().zip(&stats.mean) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    for (r, &b) in var.iter_mut().zip(&stats.var_unbiased) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
}

/// Geometry: (N, C, H*W).
fn dims(x: &[usize]) -> Result<(usize, usize, usize)> {
    if x.len() != 4 {
        return shape_err("batch_norm2d", "x [N, C, H, W]", x);
    }
    Ok((x[0], x[1], x[2] * x[3]))
}

/// Forward kernel: (y, mean, invstd, batch stats in train mode).
#[allow(clippy::type_complexity)]
pub fn forward(
    x: &[f32],
    shape: &[usize],
    gamma: &[f32],
    beta: &[f32],
    mode: BnMode,
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>, Option<BatchStats>)> {
    let (n, c, hw) = dims(shape)?;
    if gamma.len() != c || beta.len() != c {
        return shape_err(
            "batch_norm2d",
            format!("gamma and beta [{c}]"),
            (gamma.len(), beta.len()),
        );
    }
    let (mean, invstd, stats) = match mode {
        BnMode::Train => {
            let m = n * hw;
            if m < 2 {
                return invalid(
                    "batch_norm2d",
                    "train mode needs more than one value per channel",
                );
            }
            let per_channel: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let planes = || (0..n).map(move |i| &x[(i * c + ch) * hw..][..hw]);
                    let mean = planes().flatten().map(|&v| v as f64).sum::<f64>() / m as f64;
                    let ss = planes()
                        .flatten()
                        .map(|&v| (v as f64 - mean).powi(2))
                        .sum::<f64>();
                    (mean, ss)
                })
                .collect();
            let mean: Vec<f32> = per_channel.iter().map(|p| p.0 as f32).collect();
            let invstd: Vec<f32> = per_channel
                .iter()
                .map(|p| (1.0 / (p.1 / m as f64 + eps as f64).sqrt()) as f32)
                .collect();
            let var_unbiased = per_channel
                .iter()
                .map(|p| (p.1 / (m - 1) as f64) as f32)
                .collect();
            (
                mean.clone(),
                invstd,
                Some(BatchStats { mean, var_unbiased }),
            )
        }
        BnMode::Eval { mean, var } => {
            if mean.len() != c || var.len() != c {
                return shape_err(
                    "batch_norm2d",
                    format!("running stats [{c}]"),
                    (mean.len(), var.len()),
                );
            }
            let invstd: Vec<f32> = var
                .iter()
                .map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32)
                .collect();
            (mean.to_vec(), invstd, None)
        }
    };
    let mut y = crate::scratch::take(x.len());
    if hw > 0 {
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(p, (yp, xp))| {
                let ch = p % c;
                let (scale, mu) = (invstd[ch] * gamma[ch], mean[ch]);
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = (v - mu) * scale + beta[ch];
                }
            });
    }
    Ok((y, mean, invstd, stats))
}

pub(crate) struct Saved {
    x: Var,
    gamma: Var,
    beta: Var,
    train: bool,
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl Tape<'_> {
    /// Batch norm of `x [N, C, H, W]` with affine `gamma`, `beta` (`[C]`). In train mode
    /// the batch statistics come back for the caller's running-statistics update.
    pub fn batch_norm2d(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        mode: BnMode,
        eps: f32,
    ) -> Result<(Var, Option<BatchStats>)> {
        let (y, mean, invstd, stats) = forward(
            self.value(x),
            self.shape(x),
            self.value(gamma),
            self.value(beta),
            mode,
            eps,
        )?;
        let train = matches!(mode, BnMode::Train);
        let shape = self.shape(x).to_vec();
        let out = self.record("batch_norm2d", shape, y, &[x, gamma, beta], || {
            Op::BatchNorm2d(Saved {
                x,
                gamma,
                beta,
                train,
                mean,
                invstd,
            })
        });
        Ok((out, stats))
    }
}

pub(crate) fn backward(s: &Saved, _out: Var, dy: &[f32], v: Values, g: &mut GradStore) {
    let (n, c, hw) = dims(v.shape(s.x)).expect("checked in forward");
    let (x, gamma) = (v.get(s.x), v.get(s.gamma));
    let m = (n * hw) as f64;
    // Per channel: (sum dy, sum dy * xhat).
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sd, mut sdx) = (0f64, 0f64);
            for i in 0..n {
                let o = (i * c + ch) * hw;
                for (&d, &xv) in dy[o..o + hw].iter().zip(&x[o..o + hw]) {
                    let xhat = (xv - s.mean[ch]) * s.invstd[ch];
                    sd += d as f64;
                    sdx += d as f64 * xhat as f64;
                }
            }
            (sd, sdx)
        })
        .collect();
    if v.requires_grad(s.x) && hw > 0 {
        g.acc(s.x)
            .par_chunks_mut(hw)
            .zip(dy.par_chunks(hw).zip(x.par_chunks(hw)))
            .enumerate()
            .for_each(|(p, (dxp, (dyp, xp)))| {
                let ch = p % c;
                let k = gamma[ch] * s.invstd[ch];
                if s.train {
                    let (mdy, mdyx) = ((sums[ch].0 / m) as f32, (sums[ch].1 / m) as f32);
                    for ((d, &gy), &xv) in dxp.iter_mut().zip(dyp).zip(xp) {
                        let xhat = (xv - s.mean[ch]) * s.invstd[ch];
                        *d += k * (gy - mdy - xhat * mdyx);
                    }
                } else {
                    for (d, &gy) in dxp.iter_mut().zip(dyp) {
                        *d += k * gy;
                    }
                }
            });
    }
    if v.requires_grad(s.gamma) {
        for (d, s) in g.acc(s.gamma).iter_mut().zip(&sums) {
            *d += s.1 as f32;
        }
    }
    if v.requires_grad(s.beta) {
        for (d, s) in g.acc(s.beta).iter_mut().zip(&sums) {
            *d += s.0 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_grads, close, rand_tensor};
    use crate::Tensor;
    use proptest::prelude::*;

    fn affine(c: usize) -> (Tensor, Tensor) {
        (
            Tensor::from_fn(&[c], |i| 0.5 + 0.3 * i as f32),
            Tensor::from_fn(&[c], |i| 0.1 * i as f32 - 0.1),
        )
    }

    #[test]
    fn train_gradients_match_finite_differences() {
        let (gm, bt) = affine(3);
        check_grads(&[rand_tensor(&[4, 3, 2, 3], 1), gm, bt], |t, v| {
            Ok(t.batch_norm2d(v[0], v[1], v[2], BnMode::Train, 1e-5)?.0)
        });
    }

    #[test]
    fn eval_gradients_match_finite_differences() {
        let (gm, bt) = affine(3);
        let (mean, var) = ([0.1, -0.2, 0.3], [0.5, 1.5, 2.0]);
        check_grads(&[rand_tensor(&[2, 3, 2, 2], 1), gm, bt], |t, v| {
            Ok(t.batch_norm2d(
                v[0],
                v[1],
                v[2],
                BnMode::Eval {
                    mean: &mean,
                    var: &var,
                },
                1e-5,
            )?
            .0)
        });
    }

    /// Naive two-pass reference of the train-mode forward and the running update.
    #[test]
    fn train_forward_and_stats_match_naive() {
        let (n, c, hw) = (3, 2, 5);
        let x = rand_tensor(&[n, c, 1, hw], 4);
        let (gm, bt) = affine(c);
        let (y, _, _, stats) = forward(
            x.data(),
            x.shape(),
            gm.data(),
            bt.data(),
            BnMode::Train,
            1e-5,
        )
        .unwrap();
        let stats = stats.unwrap();
        for ch in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| (0..hw).map(move |j| (i, j)))
                .map(|(i, j)| x.data()[(i * c + ch) * hw + j] as f64)
                .collect();
            let m = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / m;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
            assert!((stats.mean[ch] as f64 - mean).abs() < 1e-6);
            assert!((stats.var_unbiased[ch] as f64 - var * m / (m - 1.0)).abs() < 1e-6);
            for i in 0..n {
                for j in 0..hw {
                    let k = (i * c + ch) * hw + j;
                    let want = (x.data()[k] as f64 - mean) / (var + 1e-5).sqrt()
                        * gm.data()[ch] as f64
                        + bt.data()[ch] as f64;
                    assert!(close(&[y[k]], &[want as f32], 1e-5));
                }
            }
        }
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        update_running(&mut rm, &mut rv, &stats, 0.1);
        assert!((rm[0] - 0.1 * stats.mean[0]).abs() < 1e-7);
        assert!((rv[1] - (0.9 + 0.1 * stats.var_unbiased[1])).abs() < 1e-7);
    }

    /// The naive reference's results, in f64.
    struct Naive {
        y: Vec<f64>,
        /// Batch mean and unbiased variance (train mode only).
        mean: Vec<f64>,
        var_unbiased: Vec<f64>,
        dx: Vec<f64>,
        dgamma: Vec<f64>,
        dbeta: Vec<f64>,
    }

    /// The values of channel `ch` of `x [n, c, hw]`, as (flat index, value).
    fn channel(x: &[f64], (n, c, hw): (usize, usize, usize), ch: usize) -> Vec<(usize, f64)> {
        (0..n)
            .flat_map(|i| (0..hw).map(move |j| (i * c + ch) * hw + j))
            .map(|k| (k, x[k]))
            .collect()
    }

    /// Naive forward, two-pass, in f64: `running = None` is train mode.
    fn naive_forward(
        x: &[f64],
        dims: (usize, usize, usize),
        gamma: &[f64],
        beta: &[f64],
        running: Option<(&[f64], &[f64])>,
        eps: f64,
    ) -> Vec<f64> {
        let mut y = vec![0f64; x.len()];
        for ch in 0..dims.1 {
            let vals = channel(x, dims, ch);
            let m = vals.len() as f64;
            let (mean, var) = match running {
                Some((rm, rv)) => (rm[ch], rv[ch]),
                None => {
                    let mean = vals.iter().map(|p| p.1).sum::<f64>() / m;
                    let var = vals.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / m;
                    (mean, var)
                }
            };
            for (k, v) in vals {
                y[k] = (v - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch];
            }
        }
        y
    }

    /// Naive forward and backward of `sum(y * dy)`. The train-mode backward is the
    /// textbook chain rule through the batch mean and variance, step by step:
    /// `dxhat = dy*gamma`, `dvar = sum dxhat*(x-mean) * -1/2 (var+eps)^-3/2`,
    /// `dmean = -sum dxhat/std + dvar * mean(-2(x-mean))`,
    /// `dx = dxhat/std + dvar*2(x-mean)/m + dmean/m`.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f64],
        dims: (usize, usize, usize),
        gamma: &[f64],
        beta: &[f64],
        running: Option<(&[f64], &[f64])>,
        eps: f64,
        dy: &[f64],
    ) -> Naive {
        let c = dims.1;
        let mut r = Naive {
            y: naive_forward(x, dims, gamma, beta, running, eps),
            mean: vec![0.0; c],
            var_unbiased: vec![0.0; c],
            dx: vec![0.0; x.len()],
            dgamma: vec![0.0; c],
            dbeta: vec![0.0; c],
        };
        for ch in 0..c {
            let vals = channel(x, dims, ch);
            let m = vals.len() as f64;
            let (mean, var) = match running {
                Some((rm, rv)) => (rm[ch], rv[ch]),
                None => {
                    let mean = vals.iter().map(|p| p.1).sum::<f64>() / m;
                    let ss = vals.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>();
                    r.mean[ch] = mean;
                    r.var_unbiased[ch] = ss / (m - 1.0);
                    (mean, ss / m)
                }
            };
            let std = (var + eps).sqrt();
            let (mut dvar, mut dmean) = (0f64, 0f64);
            for &(k, v) in &vals {
                let xhat = (v - mean) / std;
                r.dbeta[ch] += dy[k];
                r.dgamma[ch] += dy[k] * xhat;
                let dxhat = dy[k] * gamma[ch];
                dvar += dxhat * (v - mean) * -0.5 * (var + eps).powf(-1.5);
                dmean -= dxhat / std;
            }
            if running.is_none() {
                dmean += dvar * vals.iter().map(|p| -2.0 * (p.1 - mean)).sum::<f64>() / m;
            }
            for &(k, v) in &vals {
                let dxhat = dy[k] * gamma[ch];
                r.dx[k] = dxhat / std;
                if running.is_none() {
                    r.dx[k] += dvar * 2.0 * (v - mean) / m + dmean / m;
                }
            }
        }
        r
    }

    /// Checks the hand-written naive gradients against central differences of the naive
    /// forward (in f64) at a few coordinates of x and every gamma and beta.
    #[allow(clippy::too_many_arguments)]
    fn naive_grads_match_central_differences(
        x: &[f64],
        dims: (usize, usize, usize),
        gamma: &[f64],
        beta: &[f64],
        running: Option<(&[f64], &[f64])>,
        eps: f64,
        dy: &[f64],
        r: &Naive,
    ) -> std::result::Result<(), TestCaseError> {
        use crate::testing::central_diff;
        let dot = |y: Vec<f64>| y.iter().zip(dy).map(|(a, b)| a * b).sum::<f64>();
        let h = 1e-5;
        let near = |a: f64, b: f64, what: &str| {
            prop_assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what}: {a} vs {b}"
            );
            Ok(())
        };
        for i in (0..x.len()).step_by(x.len().div_ceil(7)) {
            let fd = central_diff(
                |x| dot(naive_forward(x, dims, gamma, beta, running, eps)),
                x,
                i,
                h,
            );
            near(r.dx[i], fd, &format!("naive dx[{i}]"))?;
        }
        for ch in 0..dims.1 {
            let fd = central_diff(
                |g| dot(naive_forward(x, dims, g, beta, running, eps)),
                gamma,
                ch,
                h,
            );
            near(r.dgamma[ch], fd, "naive dgamma")?;
            let fd = central_diff(
                |b| dot(naive_forward(x, dims, gamma, b, running, eps)),
                beta,
                ch,
                h,
            );
            near(r.dbeta[ch], fd, "naive dbeta")?;
        }
        Ok(())
    }

    /// Inputs whose every channel has standard deviation `std_c` in [0.2, 3] around a
    /// mean in [-2, 2]: random values standardised per channel. (Uniform random values
    /// can put two values of a small channel arbitrarily close together, and then the
    /// f32 kernel's `x - mean` cancels away all precision: a conditioning problem, not a
    /// bug.)
    fn well_spread(dims: (usize, usize, usize), seed: u64) -> Vec<f32> {
        let (n, c, hw) = dims;
        let r = crate::testing::f64s(rand_tensor(&[n, c, hw], seed).data());
        let loc = crate::testing::rand_in(&[c], seed + 1, -2.0, 2.0);
        let spread = crate::testing::rand_in(&[c], seed + 2, 0.2, 3.0);
        let mut x = vec![0f32; r.len()];
        for ch in 0..c {
            let vals = channel(&r, dims, ch);
            let m = vals.len() as f64;
            let mean = vals.iter().map(|p| p.1).sum::<f64>() / m;
            let sd = (vals.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / m).sqrt();
            for (k, v) in vals {
                let z = if sd > 0.0 { (v - mean) / sd } else { v };
                x[k] = (loc.data()[ch] as f64 + spread.data()[ch] as f64 * z) as f32;
            }
        }
        x
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Train and eval mode against the naive reference: output, batch statistics and
        /// all three gradients. `as_params` puts gamma and beta in a parameter buffer
        /// (Train-mode tape, gradients into the buffer) instead of tape inputs.
        #[test]
        fn forward_and_backward_match_naive(
            n in 1usize..5, c in 1usize..6, h in 1usize..8, w in 1usize..8,
            train: bool, as_params: bool,
            eps in prop::sample::select(vec![1e-5f32, 1e-3, 0.1]),
            seed in 0u64..1000,
        ) {
            use crate::testing::{f32s, f64s, grad_of, prop_close, rand_in};
            use crate::{Mode, Tape};
            prop_assume!(!train || n * h * w >= 2);
            let dims = (n, c, h * w);
            let xs = [n, c, h, w];
            let x = Tensor::new(&xs, well_spread(dims, seed)).unwrap();
            let gamma = rand_in(&[c], seed + 3, -1.5, 1.5);
            let beta = rand_in(&[c], seed + 4, -1.0, 1.0);
            let rmean = rand_in(&[c], seed + 5, -1.0, 1.0);
            let rvar = rand_in(&[c], seed + 6, 0.1, 2.0);
            let dy = rand_tensor(&xs, seed + 7).into_data();

            let mut params = gamma.data().to_vec();
            params.extend_from_slice(beta.data());
            let mut t = if as_params {
                Tape::new(&params, Mode::Train)
            } else {
                Tape::new(&[], Mode::InputGrad)
            };
            let xv = t.input(x.clone(), true);
            let (gv, bv) = if as_params {
                (t.param(0, &[c]).unwrap(), t.param(c, &[c]).unwrap())
            } else {
                (t.input(gamma.clone(), true), t.input(beta.clone(), true))
            };
            let mode = if train {
                BnMode::Train
            } else {
                BnMode::Eval { mean: rmean.data(), var: rvar.data() }
            };
            let (y, stats) = t.batch_norm2d(xv, gv, bv, mode, eps).unwrap();
            // The parameter gradients must be added to what the buffer holds.
            let pg0 = rand_tensor(&[params.len()], seed + 8).into_data();
            let mut pg = pg0.clone();
            let grads = t
                .backward_seeded(y, &dy, as_params.then_some(&mut pg[..]))
                .unwrap();
            pg.iter_mut().zip(&pg0).for_each(|(g, g0)| *g -= g0);

            let (x64, g64, b64, dy64) = (f64s(x.data()), f64s(gamma.data()), f64s(beta.data()), f64s(&dy));
            let (rm64, rv64) = (f64s(rmean.data()), f64s(rvar.data()));
            let running = (!train).then_some((&rm64[..], &rv64[..]));
            let r = naive(&x64, dims, &g64, &b64, running, eps as f64, &dy64);
            naive_grads_match_central_differences(&x64, dims, &g64, &b64, running, eps as f64, &dy64, &r)?;

            let what = |q: &str| format!("{q}: x {xs:?} train {train} eps {eps} seed {seed}");
            prop_close(&what("y"), t.value(y), &f32s(&r.y), 1e-5)?;
            match stats {
                Some(s) => {
                    prop_assert!(train, "batch statistics in eval mode");
                    prop_close(&what("mean"), &s.mean, &f32s(&r.mean), 1e-5)?;
                    prop_close(&what("var_unbiased"), &s.var_unbiased, &f32s(&r.var_unbiased), 1e-5)?;
                }
                None => prop_assert!(!train, "no batch statistics in train mode"),
            }
            prop_close(&what("dx"), &grad_of(&grads, xv, "dx")?, &f32s(&r.dx), 1e-4)?;
            let (dgamma, dbeta) = if as_params {
                (pg[..c].to_vec(), pg[c..].to_vec())
            } else {
                (grad_of(&grads, gv, "dgamma")?, grad_of(&grads, bv, "dbeta")?)
            };
            prop_close(&what("dgamma"), &dgamma, &f32s(&r.dgamma), 1e-4)?;
            prop_close(&what("dbeta"), &dbeta, &f32s(&r.dbeta), 1e-4)?;
        }
    }

    #[test]
    fn a_single_value_per_channel_is_an_error_in_train_mode() {
        let x = rand_tensor(&[1, 2, 1, 1], 0);
        let (gm, bt) = affine(2);
        assert!(forward(
            x.data(),
            x.shape(),
            gm.data(),
            bt.data(),
            BnMode::Train,
            1e-5
        )
        .is_err());
    }
}
