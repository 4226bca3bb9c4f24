//! The ADMM baseline's state (Ye et al., ICCV 2019; method.md section 3): for every
//! pruned tensor an auxiliary copy Z in the constraint set S = {at most k_l non-zeros}
//! and a scaled dual U. The loss gets rho/2 ||W - Z + U||^2; every `admm_epoch` epochs
//! Z = Proj_S(W + U), U = U + W - Z, rho *= 1.3; at the end W is hard-pruned to S and
//! retrained under the mask. Z and U are the two extra copies of every pruned weight
//! that method.md's memory comparison is about.

use crate::error::{assert_len, check_len, Error, Result};
use crate::mask::Mask;
use crate::prox::keep_top_k;
use crate::prunable::Prunable;

/// Ye et al.'s growth factor of rho at each ADMM update.
pub const RHO_FACTOR: f32 = 1.3;

#[derive(Clone, Debug, PartialEq)]
pub struct Admm {
    /// Z, the groups' values concatenated in group order.
    pub z: Vec<f32>,
    /// The scaled dual U, laid out as `z`.
    pub u: Vec<f32>,
    pub rho: f32,
    /// rho is multiplied by this at each [`Admm::update`] (default [`RHO_FACTOR`]).
    pub rho_factor: f32,
    /// Weights each group keeps (the k_l of S).
    pub keep: Vec<usize>,
    prunable: Prunable,
}

impl Admm {
    /// Z = Proj_S(W), U = 0, as Ye et al.'s code initialises them.
    pub fn new(params: &[f32], prunable: &Prunable, keep: &[usize], rho0: f32) -> Result<Admm> {
        check_len("parameters", prunable.param_len, params.len())?;
        if keep.len() != prunable.groups.len() {
            return Err(Error::KeepCounts(format!(
                "{} counts for {} pruned tensors",
                keep.len(),
                prunable.groups.len()
            )));
        }
        if let Some((g, &k)) = prunable.groups.iter().zip(keep).find(|(g, &k)| k > g.len()) {
            return Err(Error::KeepCounts(format!(
                "{} keeps {k} of its {} weights",
                g.name,
                g.len()
            )));
        }
        if !(rho0.is_finite() && rho0 > 0.0) {
            return Err(Error::Config(format!(
                "ADMM rho must be a finite number > 0, got {rho0}"
            )));
        }
        let mut admm = Admm {
            z: vec![0.0; prunable.total()],
            u: vec![0.0; prunable.total()],
            rho: rho0,
            rho_factor: RHO_FACTOR,
            keep: keep.to_vec(),
            prunable: prunable.clone(),
        };
        admm.project(params);
        Ok(admm)
    }

    /// Z = Proj_S(W + U), group by group.
    fn project(&mut self, params: &[f32]) {
        let mut at = 0;
        for (g, &k) in self.prunable.groups.iter().zip(&self.keep) {
            let z = &mut self.z[at..at + g.len()];
            for ((z, &w), &u) in z
                .iter_mut()
                .zip(&params[g.range.clone()])
                .zip(&self.u[at..])
            {
                *z = w + u;
            }
            keep_top_k(z, k);
            at += g.len();
        }
    }

    /// Calls `f(w, z, u, i)` for every pruned weight, i its index in the buffer.
    fn for_each(&self, params: &[f32], mut f: impl FnMut(f32, f32, f32, usize)) {
        let mut at = 0;
        for g in &self.prunable.groups {
            for (i, &w) in g.range.clone().zip(&params[g.range.clone()]) {
                f(w, self.z[at], self.u[at], i);
                at += 1;
            }
        }
    }

    /// Adds the gradient of rho/2 ||W - Z + U||^2, rho (W - Z + U), to the gradients of
    /// the pruned tensors.
    ///
    /// # Panics
    /// If `params` or `grads` is not as long as the parameter buffer.
    pub fn penalty_grad(&self, params: &[f32], grads: &mut [f32]) {
        assert_len("parameters", self.prunable.param_len, params.len());
        assert_len("gradients", self.prunable.param_len, grads.len());
        let rho = self.rho;
        self.for_each(params, |w, z, u, i| grads[i] += rho * (w - z + u));
    }

    /// The augmented-Lagrangian term rho/2 ||W - Z + U||^2 (summed in f64).
    pub fn penalty(&self, params: &[f32]) -> f64 {
        assert_len("parameters", self.prunable.param_len, params.len());
        let mut sum = 0.0f64;
        self.for_each(params, |w, z, u, _| sum += ((w - z + u) as f64).powi(2));
        0.5 * self.rho as f64 * sum
    }

    /// ||W - Z||_2, the primal residual: how far W still is from the constraint set.
    pub fn primal_residual(&self, params: &[f32]) -> f64 {
        assert_len("parameters", self.prunable.param_len, params.len());
        let mut sum = 0.0f64;
        self.for_each(params, |w, z, _, _| sum += ((w - z) as f64).powi(2));
        sum.sqrt()
    }

    /// One ADMM update: Z = Proj_S(W + U), U = U + W - Z, rho *= rho_factor.
    ///
    /// # Panics
    /// If `params` is not as long as the parameter buffer.
    pub fn update(&mut self, params: &[f32]) {
        assert_len("parameters", self.prunable.param_len, params.len());
        self.project(params);
        let mut at = 0;
        for g in &self.prunable.groups {
            for &w in &params[g.range.clone()] {
                self.u[at] += w - self.z[at];
                at += 1;
            }
        }
        self.rho *= self.rho_factor;
    }

    /// Bytes of Z and U: 2 * 4 * (number of pruned weights).
    pub fn state_bytes(&self) -> usize {
        (self.z.len() + self.u.len()) * std::mem::size_of::<f32>()
    }

    /// The end of ADMM: keeps each group's k largest |W| (zeroing the rest of `params`)
    /// and returns the resulting zero pattern for masked retraining.
    pub fn hard_prune(&self, params: &mut [f32]) -> Mask {
        assert_len("parameters", self.prunable.param_len, params.len());
        for (g, &k) in self.prunable.groups.iter().zip(&self.keep) {
            keep_top_k(&mut params[g.range.clone()], k);
        }
        Mask::from_params(params, &self.prunable).expect("length checked above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prunable::Group;

    /// [bias, w0..w3, bias]: one group of 4 weights, keeping 2.
    fn setup() -> (Prunable, Vec<f32>) {
        let group = Group {
            name: "fc.weight".into(),
            range: 1..5,
            shape: vec![2, 2],
        };
        let p = Prunable::new(vec![group], 6).unwrap();
        (p, vec![7.0, 0.5, -1.0, 0.2, 2.0, -7.0])
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn hand_computed_case() {
        let (p, mut w) = setup();
        let mut admm = Admm::new(&w, &p, &[2], 0.1).unwrap();
        // Z = Proj(W) keeps -1 and 2; U = 0.
        assert_eq!(admm.z, vec![0.0, -1.0, 0.0, 2.0]);
        assert_eq!(admm.u, vec![0.0; 4]);
        assert_eq!(admm.state_bytes(), 2 * 4 * 4);

        // Gradient rho (W - Z + U) = 0.1 (0.5, 0, 0.2, 0); biases untouched.
        let mut g = vec![1.0f32; 6];
        admm.penalty_grad(&w, &mut g);
        assert!(close(&g, &[1.0, 1.05, 1.0, 1.02, 1.0, 1.0]), "{g:?}");
        // rho/2 ||W - Z + U||^2 = 0.05 (0.25 + 0.04).
        assert!((admm.penalty(&w) - 0.0145).abs() < 1e-7);
        assert!((admm.primal_residual(&w) - 0.29f64.sqrt()).abs() < 1e-6);

        // A later state: W moved, U non-zero.
        w[3] = 0.9;
        admm.u = vec![0.1, 0.3, -0.6, 0.0];
        admm.update(&w);
        // W + U = (0.6, -0.7, 0.3, 2.0) -> Z keeps -0.7 and 2.0.
        assert!(close(&admm.z, &[0.0, -0.7, 0.0, 2.0]), "{:?}", admm.z);
        // U + W - Z = (0.1 + 0.5, 0.3 - 1.0 + 0.7, -0.6 + 0.9, 0) = (0.6, 0, 0.3, 0).
        assert!(close(&admm.u, &[0.6, 0.0, 0.3, 0.0]), "{:?}", admm.u);
        assert!((admm.rho - 0.13).abs() < 1e-7);

        // rho (W - Z + U) = 0.13 (0.5 + 0.6, -1.0 + 0.7, 0.9 + 0.3, 0) = (0.143, -0.039, 0.156, 0).
        let mut g = vec![0.0f32; 6];
        admm.penalty_grad(&w, &mut g);
        assert!(close(&g, &[0.0, 0.143, -0.039, 0.156, 0.0, 0.0]), "{g:?}");

        let mask = admm.hard_prune(&mut w);
        assert_eq!(w, vec![7.0, 0.0, -1.0, 0.0, 2.0, -7.0]);
        assert_eq!((mask.nnz(), mask.len()), (2, 4));
    }

    #[test]
    fn rejects_bad_inputs() {
        let (p, w) = setup();
        assert!(matches!(
            Admm::new(&w, &p, &[5], 0.1),
            Err(Error::KeepCounts(_))
        ));
        assert!(matches!(
            Admm::new(&w, &p, &[1, 1], 0.1),
            Err(Error::KeepCounts(_))
        ));
        assert!(matches!(
            Admm::new(&w, &p, &[2], 0.0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Admm::new(&w[..5], &p, &[2], 0.1),
            Err(Error::Length { .. })
        ));
    }
}
