//! The attack crate's model interface for the sparse model, so robustness is measured on
//! the deployed artifact: the same CSR kernels, the same fused epilogues, the same folded
//! batch norm. Samples of a batch run in parallel (each with its own buffers); every
//! sample's result depends on that sample only, so any thread count gives the same bits.

use crate::model::SparseModel;
use rayon::prelude::*;
use rcc_attack::{AttackLoss, Classifier, Error, Result};
use rcc_tensor::Tensor;

impl SparseModel {
    fn check_batch(&self, x: &Tensor) -> Result<usize> {
        let shape = x.shape();
        if shape.len() != 4 || shape[1..] != self.input_shape() {
            return Err(Error::Model(format!(
                "sparse model input: expected [N, {:?}], got {shape:?}",
                self.input_shape()
            )));
        }
        Ok(shape[0])
    }
}

impl Classifier for SparseModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.check_batch(x)?;
        let (il, k) = (self.in_len(), self.out_len());
        let mut out = vec![0.0; n * k];
        // Chunks of samples per task, each with its own arena.
        let per = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
        out.par_chunks_mut(per * k)
            .zip(x.data().par_chunks(per * il))
            .try_for_each(|(o, xs)| self.infer_with(&mut self.arena(), xs, o))
            .map_err(|e| Error::Model(e.to_string()))?;
        Ok(Tensor::new(&[n, k], out)?)
    }

    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: AttackLoss,
    ) -> Result<(Vec<f32>, Tensor, Tensor)> {
        let n = self.check_batch(x)?;
        if labels.len() != n {
            return Err(Error::Model(format!(
                "{} labels for {n} samples",
                labels.len()
            )));
        }
        let (il, k) = (self.in_len(), self.out_len());
        loss.check(k, labels)?;
        let mut grad = vec![0.0; n * il];
        let per_sample: Vec<(f32, Vec<f32>)> = grad
            .par_chunks_mut(il)
            .zip(x.data().par_chunks(il))
            .zip(labels.par_iter())
            .map(|((g, xs), &y)| {
                let mut value = Ok(vec![]);
                let seed = |z: &[f32]| loss.seed(z, std::slice::from_ref(&y), &mut value);
                let logits = self
                    .input_vjp(xs, seed, g)
                    .map_err(|e| Error::Model(e.to_string()))?;
                Ok((value?[0], logits))
            })
            .collect::<Result<_>>()?;
        let losses = per_sample.iter().map(|p| p.0).collect();
        let logits = per_sample.into_iter().flat_map(|p| p.1).collect();
        Ok((
            losses,
            Tensor::new(&[n, k], logits)?,
            Tensor::new(x.shape(), grad)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::linear::tests::close;
    use crate::model::tests::model;
    use crate::{KernelChoice, ModelSpec, SparseModel};
    use rcc_attack::{goal, square_linf, AttackLoss, Classifier, SquareConfig};
    use rcc_nn::Arch;
    use rcc_tensor::Tensor;

    /// The trait's answers equal the dense model's through the same trait.
    #[test]
    fn classifier_matches_the_dense_model() {
        let m = model(Arch::LenetAdv(2), 0.9, 3);
        let sm =
            SparseModel::build(&ModelSpec::from_model(&m).unwrap(), KernelChoice::Auto).unwrap();
        let x: Vec<f32> = (0..5 * 784)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0)
            .collect();
        let x = Tensor::new(&[5, 1, 28, 28], x).unwrap();
        let labels = [0, 1, 2, 3, 4];
        // Both losses: the dense model takes its engine's cross-entropy op for CE and
        // the seeded backward pass for DLR, the sparse model the seeded pass for both.
        for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
            let (l1, z1, g1) = Classifier::loss_and_input_grad(&sm, &x, &labels, loss).unwrap();
            let (l2, z2, g2) = Classifier::loss_and_input_grad(&m, &x, &labels, loss).unwrap();
            assert!(close(&l1, &l2, 1e-5), "{loss:?}");
            assert!(close(z1.data(), z2.data(), 1e-5), "{loss:?}");
            assert!(close(g1.data(), g2.data(), 1e-5), "{loss:?}");
            assert!(g1.data().iter().any(|&g| g != 0.0), "{loss:?}");
            assert!(close(sm.logits(&x).unwrap().data(), z2.data(), 1e-5));
            assert!(Classifier::loss_and_input_grad(&sm, &x, &labels[..4], loss).is_err());
            // A label past the last class is an error, not an out-of-bounds read.
            let bad = [0, 1, 2, 3, 10];
            assert!(Classifier::loss_and_input_grad(&sm, &x, &bad, loss).is_err());
            assert!(Classifier::loss_and_input_grad(&m, &x, &bad, loss).is_err());
        }
        // The targeted losses (APGD-T's, FAB-T's), with (class, target) labels.
        let goals = [
            goal(0, 1, 10),
            goal(1, 9, 10),
            goal(2, 0, 10),
            goal(3, 4, 10),
            goal(4, 2, 10),
        ];
        for loss in [AttackLoss::TargetedDlr, AttackLoss::LogitGap] {
            let (l1, z1, g1) = Classifier::loss_and_input_grad(&sm, &x, &goals, loss).unwrap();
            let (l2, z2, g2) = Classifier::loss_and_input_grad(&m, &x, &goals, loss).unwrap();
            assert!(close(&l1, &l2, 1e-5), "{loss:?}");
            assert!(close(z1.data(), z2.data(), 1e-5), "{loss:?}");
            assert!(close(g1.data(), g2.data(), 1e-5), "{loss:?}");
            assert!(g1.data().iter().any(|&g| g != 0.0), "{loss:?}");
            // A target equal to the class is an error.
            let bad = [goal(0, 0, 10); 5];
            assert!(Classifier::loss_and_input_grad(&sm, &x, &bad, loss).is_err());
        }
        assert!(sm
            .logits(&Tensor::new(&[1, 784], vec![0.0; 784]).unwrap())
            .is_err());
    }

    /// Square reads only logits, so on the sparse model it gives the verdicts it gives
    /// on the dense model whose logits it reproduces (within float noise: compared on
    /// the outcome of each example).
    #[test]
    fn square_runs_on_the_sparse_model() {
        use rand::SeedableRng;
        let m = model(Arch::LenetAdv(2), 0.9, 4);
        let sm =
            SparseModel::build(&ModelSpec::from_model(&m).unwrap(), KernelChoice::Auto).unwrap();
        let x: Vec<f32> = (0..6 * 784)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0)
            .collect();
        let x = Tensor::new(&[6, 1, 28, 28], x).unwrap();
        let labels = m.logits(&x).unwrap().argmax_rows();
        let cfg = SquareConfig {
            queries: 100,
            ..SquareConfig::new(0.1)
        };
        let run = |c: &dyn Fn(&mut rand::rngs::StdRng) -> Vec<bool>| {
            c(&mut rand::rngs::StdRng::seed_from_u64(3))
        };
        let sparse = run(&|r| square_linf(&sm, &x, &labels, &cfg, r).unwrap().fooled);
        let dense = run(&|r| square_linf(&m, &x, &labels, &cfg, r).unwrap().fooled);
        assert_eq!(sparse, dense);
        assert!(
            dense.iter().any(|&f| f) && dense.iter().any(|&f| !f),
            "{dense:?}"
        );
    }
}
