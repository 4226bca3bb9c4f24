//! rcc's TRADES path against PyTorch running the official TRADES code (yaodongyu/TRADES,
//! `trades.py`): `tests/data/trades_reference.safetensors`, written by
//! `scripts/trades_reference.py` (which says what every tensor means).
//!
//! - The inner maximisation: `trades_pgd_from` from the same (projected) start as the
//!   official loop, for `eps 0.3, 10 x 0.075` and `eps 0.3, 5 x 0.01`. The positions are
//!   updated with the same f32 arithmetic on both sides, so an element either matches bit
//!   for bit or differs because a gradient sign flipped (the reference takes its signs from
//!   a float64 gradient) and everything after it moved. Nearly all elements must match.
//! - The loss and every parameter gradient of `Model::train_grad_trades` (the tape's
//!   `trades_loss`) at beta 1 and 6, on the clean batch and the reference's 10-step
//!   adversarial batch, against the official loss computed in float64: loss to 1e-5
//!   relative, gradients to 1e-4 by the norm-wise relative error of
//!   `../shared/reference/README.md` (PyTorch's own float32 is within 2.5e-6 of float64
//!   here; the file's metadata has the figures).

use rand::SeedableRng;
use rcc_attack::{trades_pgd_from, Norm};
use rcc_nn::reference::rel_err;
use rcc_nn::safetensors::SafeTensors;
use rcc_nn::{Arch, Model};
use rcc_tensor::Tensor;
use std::path::{Path, PathBuf};

const EPS: f32 = 0.3;

struct Reference {
    st: SafeTensors,
    path: PathBuf,
    model: Model,
    x: Tensor,
    labels: Vec<usize>,
}

impl Reference {
    fn load() -> Reference {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trades_reference.safetensors");
        let st = SafeTensors::read(&path).unwrap();
        assert_eq!(st.metadata["format"], "rcc-trades-reference-v1");
        assert_eq!(st.metadata["arch"], "lenet_adv:1");
        let model = Model::from_safetensors(&st, &path, Arch::LenetAdv(1), false).unwrap();
        let x = Self::tensor(&st, &path, "input");
        let n = x.shape()[0];
        let labels = st
            .expect_i64("labels", &[n], &path)
            .unwrap()
            .iter()
            .map(|&l| usize::try_from(l).unwrap())
            .collect();
        Reference {
            st,
            path,
            model,
            x,
            labels,
        }
    }

    fn tensor(st: &SafeTensors, path: &Path, name: &str) -> Tensor {
        let (shape, data) = st.f32_any(name, path).unwrap();
        Tensor::new(&shape, data).unwrap()
    }

    fn get(&self, name: &str) -> Tensor {
        Self::tensor(&self.st, &self.path, name)
    }

    /// The official start `x + 0.001 N(0, 1)` projected onto the ball and [0, 1], as
    /// `trades_pgd` projects its own.
    fn projected_start(&self) -> Tensor {
        let raw = self.get("start_raw");
        let per = self.x.numel() / self.x.shape()[0];
        let mut start = raw.into_data();
        for (row, c) in start.chunks_mut(per).zip(self.x.data().chunks(per)) {
            Norm::Linf.project(row, c, EPS);
        }
        Tensor::new(self.x.shape(), start).unwrap()
    }
}

#[test]
fn the_attack_follows_the_official_trajectory() {
    let r = Reference::load();
    let start = r.projected_start();
    for (name, steps, step) in [("s10", 10, 0.075f32), ("s5", 5, 0.01)] {
        let theirs = r.get(&format!("adv.{name}"));
        let ours = trades_pgd_from(&r.model, &r.x, start.clone(), EPS, steps, step).unwrap();
        assert_eq!(ours.shape(), theirs.shape());
        let total = ours.numel();
        let (mut differ, mut max_abs) = (0usize, 0f32);
        for (&a, &b) in ours.data().iter().zip(theirs.data()) {
            if a.to_bits() != b.to_bits() {
                differ += 1;
                max_abs = max_abs.max((a - b).abs());
            }
        }
        let frac = differ as f64 / total as f64;
        println!(
            "trajectory {name} ({steps} x {step}, eps {EPS}): {differ} of {total} elements differ \
             ({:.3}%), max |diff| {max_abs:e}",
            100.0 * frac
        );
        assert!(
            frac <= 0.005,
            "{name}: {differ} of {total} elements differ from the official trajectory"
        );
        // The threat model holds.
        for (&a, &c) in ours.data().iter().zip(r.x.data()) {
            assert!((0.0..=1.0).contains(&a) && (a - c).abs() <= EPS + 1e-6);
        }
    }
}

#[test]
fn the_loss_and_its_gradients_match_the_official_loss() {
    let mut r = Reference::load();
    let x_adv = r.get("adv.s10");
    let views = r.model.net.params.views().to_vec();
    for (b, beta) in [("b1", 1.0f32), ("b6", 6.0)] {
        let mut grads = vec![0.0; r.model.params.len()];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let (x, labels) = (r.x.clone(), r.labels.clone());
        let out = r
            .model
            .train_grad_trades(&x, &x_adv, &labels, beta, None, &mut grads, &mut rng)
            .unwrap();
        let theirs = r.st.expect_f64(&format!("loss.{b}"), &[], &r.path).unwrap()[0];
        let loss_err = (out.loss as f64 - theirs).abs() / theirs.abs();
        println!(
            "beta {beta}: loss {} vs {theirs} (rel err {loss_err:.2e})",
            out.loss
        );
        assert!(
            loss_err <= 1e-5,
            "beta {beta}: loss {} vs {theirs}",
            out.loss
        );
        let mut compared = 0;
        for v in &views {
            let key = format!("grad.{b}.{}", v.name);
            if r.st.get(&key).is_none() {
                continue;
            }
            let (shape, want) = r.st.f32_any(&key, &r.path).unwrap();
            assert_eq!(shape, v.shape, "{key}");
            let want: Vec<f64> = want.iter().map(|&w| w as f64).collect();
            let err = rel_err(&grads[v.range()], &want);
            println!("  {key:<22} rel err {err:.2e}");
            assert!(err <= 1e-4, "{key}: relative error {err:e}");
            compared += 1;
        }
        // beta 6 has every parameter; beta 1 all but fc1.weight.
        assert_eq!(compared, views.len() - usize::from(b == "b1"), "{b}");
    }
}
