//! Threat models: the l_inf and l_2 balls of radius eps around each clean input,
//! intersected with the pixel box [0, 1]. Every helper works on one example (a slice of
//! `C * H * W` values); norms are per example, accumulated in f64.

use crate::fgsm::sign;
use rand::Rng;
use rand::RngCore;
use rand_distr::StandardNormal;

/// The norm of a threat model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Norm {
    Linf,
    L2,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }

    /// `||a - b||` for one example, in f64.
    pub fn dist(self, a: &[f32], b: &[f32]) -> f64 {
        let diffs = a.iter().zip(b).map(|(&u, &v)| u as f64 - v as f64);
        match self {
            Norm::Linf => diffs.fold(0.0, |m, d| m.max(d.abs())),
            Norm::L2 => diffs.map(|d| d * d).sum::<f64>().sqrt(),
        }
    }

    /// The largest distance [`Norm::dist`] may report for a point that an attack
    /// projected onto the ball of radius `eps`: eps plus f32 rounding (the projection
    /// computes `clean +- eps` and rescalings in f32).
    pub fn tolerance(self, eps: f32) -> f64 {
        match self {
            Norm::Linf => eps as f64 + 1e-6,
            Norm::L2 => eps as f64 * (1.0 + 1e-5) + 1e-6,
        }
    }

    /// Projects one example onto the ball of radius `eps` around `clean`, then clamps it
    /// to [0, 1]. For a clean input in [0, 1] the clamp never leaves the ball: it moves
    /// each coordinate towards the box, which holds the centre.
    pub fn project(self, adv: &mut [f32], clean: &[f32], eps: f32) {
        match self {
            Norm::Linf => {
                for (v, &c) in adv.iter_mut().zip(clean) {
                    *v = v.clamp(c - eps, c + eps).clamp(0.0, 1.0);
                }
            }
            Norm::L2 => {
                let n = Norm::L2.dist(adv, clean);
                if n > eps as f64 {
                    let f = (eps as f64 / n) as f32;
                    for (v, &c) in adv.iter_mut().zip(clean) {
                        *v = c + (*v - c) * f;
                    }
                }
                for v in adv.iter_mut() {
                    *v = v.clamp(0.0, 1.0);
                }
            }
        }
    }

    /// One steepest-ascent step of length `step` for this norm: `sign(g)` for l_inf,
    /// `g / ||g||_2` for l_2. A zero gradient (or zero coordinates for l_inf) gives no
    /// step.
    pub fn step(self, adv: &mut [f32], grad: &[f32], step: f32) {
        match self {
            Norm::Linf => {
                for (v, &g) in adv.iter_mut().zip(grad) {
                    *v += step * sign(g);
                }
            }
            Norm::L2 => {
                let n = grad
                    .iter()
                    .map(|&g| g as f64 * g as f64)
                    .sum::<f64>()
                    .sqrt();
                if n > 0.0 && n.is_finite() {
                    let f = step as f64 / n;
                    for (v, &g) in adv.iter_mut().zip(grad) {
                        *v += (g as f64 * f) as f32;
                    }
                }
            }
        }
    }

    /// A uniform random point of the ball around `clean` (then clamped to [0, 1]),
    /// written into `out`, for a whole batch:
    ///
    /// - l_inf: each coordinate `clean + U[-eps, eps]` (Madry et al.);
    /// - l_2: per example, a direction from a standard Gaussian and a radius
    ///   `eps * U^(1/d)` (`d` values per example), which is uniform in the ball.
    ///
    /// Draws nothing when `eps == 0` (the start is the clean input).
    pub fn random_start(
        self,
        clean: &[f32],
        per: usize,
        eps: f32,
        rng: &mut dyn RngCore,
    ) -> Vec<f32> {
        if eps <= 0.0 {
            return clean.to_vec();
        }
        match self {
            Norm::Linf => clean
                .iter()
                .map(|&v| (v + rng.gen_range(-eps..=eps)).clamp(0.0, 1.0))
                .collect(),
            Norm::L2 => {
                let mut out = Vec::with_capacity(clean.len());
                let mut dir = vec![0f64; per];
                for c in clean.chunks(per.max(1)) {
                    for d in dir.iter_mut() {
                        *d = rng.sample(StandardNormal);
                    }
                    let u: f64 = rng.gen_range(0.0..1.0);
                    let n = dir.iter().map(|d| d * d).sum::<f64>().sqrt();
                    let r = eps as f64 * u.powf(1.0 / per as f64);
                    let f = if n > 0.0 { r / n } else { 0.0 };
                    out.extend(
                        c.iter()
                            .zip(&dir)
                            .map(|(&v, &d)| (v + (d * f) as f32).clamp(0.0, 1.0)),
                    );
                }
                // Rounding can put a point a hair outside the ball; project it back.
                for (o, c) in out.chunks_mut(per.max(1)).zip(clean.chunks(per.max(1))) {
                    Norm::L2.project(o, c, eps);
                }
                out
            }
        }
    }
}

/// The rows `idx` of a batch stored as `per` values per example.
pub(crate) fn gather(data: &[f32], per: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        out.extend_from_slice(&data[i * per..(i + 1) * per]);
    }
    out
}

/// `shape` with its leading (batch) dimension replaced by `n`.
pub(crate) fn with_batch(shape: &[usize], n: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    if let Some(first) = s.first_mut() {
        *first = n;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn l2_random_start_is_inside_the_ball_and_fills_it() {
        let mut rng = StdRng::seed_from_u64(1);
        let (per, n, eps) = (50, 400, 0.7f32);
        let clean = vec![0.5f32; per * n];
        let start = Norm::L2.random_start(&clean, per, eps, &mut rng);
        let radii: Vec<f64> = start
            .chunks(per)
            .zip(clean.chunks(per))
            .map(|(s, c)| Norm::L2.dist(s, c))
            .collect();
        assert!(radii.iter().all(|&r| r <= Norm::L2.tolerance(eps)));
        // Uniform in a 50-ball: P(r <= eps * q) = q^50, so the median radius is
        // eps * 0.5^(1/50) = 0.9862 eps.
        let mut sorted = radii.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[n / 2] / eps as f64;
        assert!((median - 0.5f64.powf(1.0 / 50.0)).abs() < 0.005, "{median}");
    }

    #[test]
    fn projections_land_in_the_ball_and_the_box() {
        let mut rng = StdRng::seed_from_u64(2);
        for norm in [Norm::Linf, Norm::L2] {
            for _ in 0..100 {
                let clean: Vec<f32> = (0..64).map(|_| rng.gen_range(0.0..=1.0)).collect();
                let mut adv: Vec<f32> =
                    clean.iter().map(|v| v + rng.gen_range(-3.0..3.0)).collect();
                let eps = rng.gen_range(0.0..2.0f32);
                norm.project(&mut adv, &clean, eps);
                assert!(norm.dist(&adv, &clean) <= norm.tolerance(eps));
                assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }

    #[test]
    fn l2_step_has_the_step_length() {
        let mut adv = vec![0.0f32; 3];
        Norm::L2.step(&mut adv, &[3.0, 0.0, 4.0], 0.5);
        assert!((adv[0] - 0.3).abs() < 1e-7 && adv[1] == 0.0 && (adv[2] - 0.4).abs() < 1e-7);
        let mut still = vec![0.25f32; 3];
        Norm::L2.step(&mut still, &[0.0; 3], 0.5);
        assert_eq!(still, vec![0.25; 3]);
    }
}
