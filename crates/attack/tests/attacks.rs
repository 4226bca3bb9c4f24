//! Attack invariants on small random-init models and synthetic images (fast; no data
//! needed): the threat model holds for every example, eps = 0 changes nothing, the
//! attacks are deterministic and thread-count invariant, PGD-l_inf is Madry's loop bit
//! for bit, and the input gradient the attacks use matches finite differences.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc_attack::{
    apgd_outcome, apgd_targeted, evaluate, evaluate_transfer, fab_targeted, fgsm, goal,
    per_example_ce, pgd, run_attack, square_fraction, square_linf, ApgdConfig, AttackLoss,
    AttackSpec, Classifier, FabConfig, Norm, PgdConfig, SquareConfig, TensorExamples,
};
use rcc_nn::{Arch, Model};
use rcc_tensor::Tensor;

/// MNIST-like images: most pixels exactly 0, some exactly 1, the rest uniform (so the
/// box constraint is active on many coordinates).
fn images(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Tensor::from_fn(&[n, 1, 28, 28], |_| {
        let u: f32 = rng.gen();
        if u < 0.6 {
            0.0
        } else if u < 0.75 {
            1.0
        } else {
            rng.gen()
        }
    });
    let labels = (0..n).map(|_| rng.gen_range(0..10)).collect();
    (x, labels)
}

fn pgd_cfg(eps: f32, steps: usize, step_size: f32, restarts: usize) -> PgdConfig {
    PgdConfig {
        eps,
        steps,
        step_size,
        random_start: true,
        restarts,
    }
}

/// Every attack in every mode, at `eps` (l_2 attacks at `4 * eps`).
fn all_attacks(
    model: &Model,
    x: &Tensor,
    labels: &[usize],
    eps: f32,
    seed: u64,
) -> Vec<(String, Norm, f32, Tensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = vec![(
        "fgsm".to_string(),
        Norm::Linf,
        eps,
        fgsm(model, x, labels, eps).unwrap(),
    )];
    for (norm, e) in [(Norm::Linf, eps), (Norm::L2, 4.0 * eps)] {
        for stop in [false, true] {
            let cfg = pgd_cfg(e, 7, e / 3.0, 2);
            let o = pgd(model, x, labels, &cfg, norm, stop, &mut rng).unwrap();
            out.push((format!("pgd-{} stop={stop}", norm.name()), norm, e, o.adv));
        }
    }
    for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
        let cfg = ApgdConfig::new(eps, 12, 2).with_loss(loss);
        let o = apgd_outcome(model, x, labels, &cfg, &mut rng).unwrap();
        out.push((format!("apgd-{}", loss.name()), Norm::Linf, eps, o.adv));
    }
    let cfg = ApgdConfig::new(eps, 12, 1);
    let o = apgd_targeted(model, x, labels, &cfg, 3, &mut rng).unwrap();
    out.push(("apgd-t".into(), Norm::Linf, eps, o.adv));
    let fab = FabConfig {
        steps: 10,
        targets: 2,
        ..FabConfig::new(eps)
    };
    let o = fab_targeted(model, x, labels, &fab).unwrap();
    out.push(("fab-t".into(), Norm::Linf, eps, o.adv));
    let square = SquareConfig {
        queries: 50,
        ..SquareConfig::new(eps)
    };
    let o = square_linf(model, x, labels, &square, &mut rng).unwrap();
    out.push(("square".into(), Norm::Linf, eps, o.adv));
    let aa = AttackSpec::AutoAttack { eps, fast: true };
    let o = run_attack(model, x, labels, &aa, &mut rng).unwrap();
    out.push(("autoattack-fast".into(), Norm::Linf, eps, o));
    out
}

#[test]
fn every_adversarial_example_is_in_its_ball_and_in_the_box() {
    let (x, _) = images(24, 1);
    let per = 784;
    for (arch, seed) in [(Arch::LenetAdv(1), 3), (Arch::Mlp, 4)] {
        let model = Model::new(arch, seed);
        // Labels the model gets right, so no attack stops at its start.
        let labels = model.logits(&x).unwrap().argmax_rows();
        for eps in [0.01f32, 0.1, 0.3, 0.6] {
            for (name, norm, e, adv) in all_attacks(&model, &x, &labels, eps, 5) {
                assert_eq!(adv.shape(), x.shape(), "{name}");
                for (i, (a, c)) in adv.data().chunks(per).zip(x.data().chunks(per)).enumerate() {
                    let d = norm.dist(a, c);
                    assert!(
                        d <= norm.tolerance(e),
                        "{arch} {name} eps {e}: example {i} at {d}"
                    );
                    assert!(
                        a.iter().all(|v| (0.0..=1.0).contains(v)),
                        "{arch} {name}: example {i} leaves [0, 1]"
                    );
                }
            }
        }
    }
}

#[test]
fn eps_zero_returns_the_clean_input_bit_for_bit() {
    let (x, _) = images(16, 2);
    let model = Model::new(Arch::LenetAdv(1), 6);
    let labels = model.logits(&x).unwrap().argmax_rows();
    for (name, _, _, adv) in all_attacks(&model, &x, &labels, 0.0, 7) {
        assert!(
            adv.data()
                .iter()
                .zip(x.data())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}"
        );
    }
}

/// The previous `pgd_linf` (Madry's loop, restarts = 1), kept as the reference: the
/// adversarial-training results depend on this exact sequence of operations.
fn madry_reference(
    model: &Model,
    x: &Tensor,
    labels: &[usize],
    cfg: &PgdConfig,
    rng: &mut StdRng,
) -> Tensor {
    let (eps, a) = (cfg.eps, cfg.step_size);
    let clean = x.data();
    let mut adv: Vec<f32> = clean
        .iter()
        .map(|&v| (v + rng.gen_range(-eps..=eps)).clamp(0.0, 1.0))
        .collect();
    for _ in 0..cfg.steps {
        let xa = Tensor::new(x.shape(), adv).unwrap();
        let (_, _, g) = model
            .loss_and_input_grad(&xa, labels, AttackLoss::CrossEntropy)
            .unwrap();
        adv = xa.into_data();
        for ((v, &c), &gv) in adv.iter_mut().zip(clean).zip(g.data()) {
            let s = if gv > 0.0 {
                1.0
            } else if gv < 0.0 {
                -1.0
            } else {
                0.0
            };
            *v = (*v + a * s).clamp(c - eps, c + eps).clamp(0.0, 1.0);
        }
    }
    Tensor::new(x.shape(), adv).unwrap()
}

#[test]
fn pgd_linf_is_madrys_loop_bit_for_bit() {
    let (x, labels) = images(20, 3);
    let model = Model::new(Arch::LenetAdv(2), 8);
    let cfg = pgd_cfg(0.3, 10, 0.075, 1);
    let ours =
        rcc_attack::pgd_linf(&model, &x, &labels, &cfg, &mut StdRng::seed_from_u64(9)).unwrap();
    let theirs = madry_reference(&model, &x, &labels, &cfg, &mut StdRng::seed_from_u64(9));
    assert_eq!(ours.data(), theirs.data());
}

#[test]
fn evaluation_is_deterministic_and_thread_count_invariant() {
    let (x, labels) = images(40, 4);
    let model = Model::new(Arch::LenetAdv(1), 10);
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let attacks = [
        AttackSpec::Fgsm { eps: 0.1 },
        AttackSpec::PgdLinf(pgd_cfg(0.05, 5, 0.02, 2)),
        AttackSpec::PgdL2(pgd_cfg(0.5, 5, 0.2, 2)),
        AttackSpec::Apgd {
            loss: AttackLoss::CrossEntropy,
            eps: 0.05,
            steps: 8,
            restarts: 2,
        },
        AttackSpec::Apgd {
            loss: AttackLoss::Dlr,
            eps: 0.05,
            steps: 8,
            restarts: 2,
        },
        AttackSpec::ApgdT {
            eps: 0.05,
            steps: 6,
            targets: 3,
            restarts: 1,
        },
        AttackSpec::FabT(FabConfig {
            steps: 6,
            targets: 2,
            ..FabConfig::new(0.05)
        }),
        AttackSpec::Square(SquareConfig {
            queries: 30,
            ..SquareConfig::new(0.05)
        }),
        AttackSpec::AutoAttack {
            eps: 0.05,
            fast: true,
        },
    ];
    let run = |threads: usize| {
        let pool = rcc_tensor::threads::pool(threads).unwrap();
        pool.install(|| evaluate(&model, &data, &attacks, 16, 42))
            .unwrap()
    };
    let (a, b, c) = (run(1), run(2), run(1));
    for r in [&b, &c] {
        assert_eq!(a.clean_correct, r.clean_correct);
        for (p, q) in a.attacks.iter().zip(&r.attacks) {
            assert_eq!(p.correct, q.correct, "{}", p.spec.describe());
            assert_eq!(
                p.max_dist.to_bits(),
                q.max_dist.to_bits(),
                "{}",
                p.spec.describe()
            );
        }
    }
    // And the adversarial points themselves.
    for spec in &attacks {
        let adv = |threads: usize| {
            let pool = rcc_tensor::threads::pool(threads).unwrap();
            pool.install(|| {
                run_attack(&model, &x, &labels, spec, &mut StdRng::seed_from_u64(1)).unwrap()
            })
        };
        assert_eq!(adv(1).data(), adv(2).data(), "{}", spec.describe());
    }
}

#[test]
fn report_is_consistent_and_robust_needs_clean() {
    let (x, labels) = images(30, 5);
    let model = Model::new(Arch::Mlp, 11);
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let attacks = [
        AttackSpec::PgdLinf(pgd_cfg(0.02, 3, 0.01, 1)),
        AttackSpec::Fgsm { eps: 0.0 },
    ];
    let r = evaluate(&model, &data, &attacks, 7, 0).unwrap();
    assert_eq!(r.n, 30);
    assert_eq!(r.clean_correct.len(), 30);
    let frac = |v: &[bool]| v.iter().filter(|&&c| c).count() as f64 / 30.0;
    assert_eq!(r.clean_acc, frac(&r.clean_correct));
    for a in &r.attacks {
        assert_eq!(a.acc, frac(&a.correct));
        for (c, rob) in r.clean_correct.iter().zip(&a.correct) {
            assert!(*c || !*rob, "robust but not clean");
        }
    }
    assert_eq!(r.attacks[1].correct, r.clean_correct, "eps 0");
    // The clean accuracy matches the logits directly.
    let preds = model.logits(&x).unwrap().argmax_rows();
    let direct: Vec<bool> = preds.iter().zip(&labels).map(|(p, y)| p == y).collect();
    assert_eq!(direct, r.clean_correct);
}

#[test]
fn invalid_settings_are_errors() {
    let (x, labels) = images(2, 6);
    let model = Model::new(Arch::LenetAdv(1), 0);
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    for bad in [
        AttackSpec::Fgsm { eps: -0.1 },
        AttackSpec::PgdLinf(pgd_cfg(f32::NAN, 3, 0.1, 1)),
        AttackSpec::PgdL2(pgd_cfg(0.3, 3, 0.1, 0)),
        AttackSpec::Apgd {
            loss: AttackLoss::CrossEntropy,
            eps: 0.3,
            steps: 3,
            restarts: 0,
        },
        AttackSpec::Apgd {
            loss: AttackLoss::TargetedDlr,
            eps: 0.3,
            steps: 3,
            restarts: 1,
        },
        AttackSpec::ApgdT {
            eps: 0.3,
            steps: 3,
            targets: 0,
            restarts: 1,
        },
        AttackSpec::FabT(FabConfig {
            beta: 1.0,
            ..FabConfig::new(0.3)
        }),
        AttackSpec::Square(SquareConfig {
            p_init: 0.0,
            ..SquareConfig::new(0.3)
        }),
        AttackSpec::Square(SquareConfig::new(-0.3)),
    ] {
        assert!(evaluate(&model, &data, &[bad], 2, 0).is_err(), "{bad:?}");
    }
    let mut rng = StdRng::seed_from_u64(0);
    assert!(pgd(
        &model,
        &x,
        &labels[..1],
        &pgd_cfg(0.1, 1, 0.1, 1),
        Norm::Linf,
        false,
        &mut rng
    )
    .is_err());
}

/// The naive reference of each attack loss for one row of logits, in f64: the
/// cross-entropy, and DLR from a full sort (Croce & Hein's eq. 5).
fn naive_loss(loss: AttackLoss, row: &[f32], y: usize) -> f64 {
    let z: Vec<f64> = row.iter().map(|&v| v as f64).collect();
    match loss {
        AttackLoss::CrossEntropy => {
            let m = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln() - z[y]
        }
        AttackLoss::Dlr => {
            let mut sorted = z.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let other = (0..z.len()).filter(|&i| i != y).map(|i| z[i]);
            let best_other = other.fold(f64::NEG_INFINITY, f64::max);
            (best_other - z[y]) / (sorted[0] - sorted[2] + 1e-12)
        }
        AttackLoss::TargetedDlr | AttackLoss::LogitGap => unreachable!("untargeted only"),
    }
}

/// Sum over the batch of the per-example loss, from the inference logits, in f64.
fn summed_loss(model: &Model, x: &Tensor, labels: &[usize], loss: AttackLoss) -> f64 {
    let logits = model.logits(x).unwrap();
    let rows = logits.data().chunks(10).zip(labels);
    rows.map(|(row, &y)| naive_loss(loss, row, y)).sum()
}

/// The input gradient the attacks step along equals a central finite-difference
/// estimate of the summed per-example loss (h = 1e-3, f64 accumulation), for the
/// cross-entropy (the engine's op) and DLR (the seeded backward pass).
#[test]
fn input_gradient_matches_finite_differences() {
    let cases = [(Arch::LenetAdv(1), 12u64), (Arch::Mlp, 13)];
    for ((arch, seed), loss) in cases
        .into_iter()
        .flat_map(|c| [(c, AttackLoss::CrossEntropy), (c, AttackLoss::Dlr)])
    {
        let model = Model::new(arch, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        // Mid-range pixels (not on the box boundary), two examples.
        let x = Tensor::from_fn(&[2, 1, 28, 28], |_| rng.gen_range(0.1..0.9));
        let labels = [3usize, 7];
        let (losses, _, g) = model.loss_and_input_grad(&x, &labels, loss).unwrap();
        let direct: f64 = losses.iter().map(|&l| l as f64).sum();
        let reference = summed_loss(&model, &x, &labels, loss);
        assert!((direct - reference).abs() < 1e-5 * direct.abs().max(1.0));
        if loss == AttackLoss::CrossEntropy {
            assert_eq!(per_example_ce(&model.logits(&x).unwrap(), &labels), losses);
        }
        let h = 1e-3f32;
        let mut fd = vec![0f64; x.numel()];
        for (j, d) in fd.iter_mut().enumerate() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.data_mut()[j] += h;
            xm.data_mut()[j] -= h;
            let step = xp.data()[j] as f64 - xm.data()[j] as f64;
            let (up, down) = (
                summed_loss(&model, &xp, &labels, loss),
                summed_loss(&model, &xm, &labels, loss),
            );
            *d = (up - down) / step;
        }
        let g: Vec<f64> = g.data().iter().map(|&v| v as f64).collect();
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let diff: Vec<f64> = g.iter().zip(&fd).map(|(a, b)| a - b).collect();
        let rel = norm(&diff) / norm(&fd);
        let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs()));
        let agree = g
            .iter()
            .zip(&fd)
            .filter(|(a, b)| (*a - *b).abs() <= 1e-2 * scale)
            .count();
        println!(
            "{arch} {}: |g - fd| / |fd| = {rel:.2e}, {agree}/{} coordinates within 1e-2 max|fd|",
            loss.name(),
            fd.len()
        );
        assert!(rel < 1e-2, "{arch} {loss:?}: relative error {rel}");
        assert!(
            agree as f64 >= 0.99 * fd.len() as f64,
            "{arch} {loss:?}: {agree}"
        );
        // And both examples' gradients are non-trivial.
        assert!(norm(&g[..784]) > 0.0 && norm(&g[784..]) > 0.0);
    }
}

/// Each example's gradient depends on that example only (the attacks rely on it to
/// drop fooled examples from the batch).
#[test]
fn per_example_gradients_do_not_depend_on_the_batch() {
    for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
        per_example_gradients_do_not_depend_on_the_batch_for(loss);
    }
}

fn per_example_gradients_do_not_depend_on_the_batch_for(loss: AttackLoss) {
    let (x, labels) = images(6, 7);
    let model = Model::new(Arch::LenetAdv(1), 14);
    let (l_all, _, g_all) = model.loss_and_input_grad(&x, &labels, loss).unwrap();
    for i in [0usize, 3, 5] {
        let xi = Tensor::new(&[1, 1, 28, 28], x.data()[i * 784..(i + 1) * 784].to_vec()).unwrap();
        let (l, _, g) = model
            .loss_and_input_grad(&xi, &labels[i..=i], loss)
            .unwrap();
        assert!((l[0] - l_all[i]).abs() <= 1e-6 * l[0].abs().max(1.0));
        let gi = &g_all.data()[i * 784..(i + 1) * 784];
        let scale = gi.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            g.data()
                .iter()
                .zip(gi)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * scale),
            "example {i}"
        );
    }
}

/// A two-class linear classifier on 16 inputs, with its exact input gradient: the
/// cross-entropy is increasing in the margin `v . x + c` (v = w_other - w_label), so its
/// maximum over the l_inf ball and the box is at `x_i -> x_i + eps sign(v_i)` clamped,
/// and over an l_2 ball inside the box at `x + eps v / |v|`.
struct Linear {
    w: [[f32; 16]; 2],
}

impl Classifier for Linear {
    fn logits(&self, x: &Tensor) -> rcc_attack::Result<Tensor> {
        let z: Vec<f32> = x
            .data()
            .chunks(16)
            .flat_map(|r| {
                self.w
                    .iter()
                    .map(move |w| w.iter().zip(r).map(|(a, b)| a * b).sum::<f32>())
            })
            .collect();
        Ok(Tensor::new(&[x.shape()[0], 2], z)?)
    }
    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: AttackLoss,
    ) -> rcc_attack::Result<(Vec<f32>, Tensor, Tensor)> {
        let logits = self.logits(x)?;
        let losses = loss.per_example(&logits, labels)?;
        let mut g = Vec::with_capacity(x.numel());
        for (row, &y) in logits.data().chunks(2).zip(labels) {
            // dL/dx = dL/dz . dz/dx, and dz/dx = w.
            let d = loss.value_and_grad(row, y)?.1;
            g.extend((0..16).map(|i| d[0] * self.w[0][i] + d[1] * self.w[1][i]));
        }
        Ok((losses, logits, Tensor::new(x.shape(), g)?))
    }
}

#[test]
fn attacks_reach_the_exact_optimum_of_a_linear_model() {
    let mut rng = StdRng::seed_from_u64(20);
    let mut w = [[0f32; 16]; 2];
    for row in w.iter_mut() {
        for v in row.iter_mut() {
            *v = rng.gen_range(-1.0..1.0);
        }
    }
    // Class 0 wins by a wide margin at x, so no attack can fool it at these radii.
    w[0][0] = 40.0;
    let model = Linear { w };
    let x = Tensor::from_fn(&[3, 1, 4, 4], |i| {
        if i % 16 == 0 {
            1.0
        } else {
            rng.gen_range(0.3..0.7)
        }
    });
    let labels = [0usize; 3];
    let v: Vec<f32> = (0..16).map(|i| w[1][i] - w[0][i]).collect();
    let (eps, eps2) = (0.2f32, 0.25f32);
    let mut best_linf = x.clone();
    let mut best_l2 = x.clone();
    let vn = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    for (k, ((b, b2), c)) in best_linf
        .data_mut()
        .iter_mut()
        .zip(best_l2.data_mut().iter_mut())
        .zip(x.data())
        .enumerate()
    {
        let vi = v[k % 16];
        *b = (c + eps * vi.signum()).clamp(0.0, 1.0);
        *b2 = c + eps2 * vi / vn;
    }
    let optimum = |t: &Tensor| per_example_ce(&model.logits(t).unwrap(), &labels);
    let (opt_linf, opt_l2) = (optimum(&best_linf), optimum(&best_l2));
    let close = |got: &[f32], want: &[f32], what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1e-3),
                "{what}: loss {g}, optimum {w}"
            );
        }
    };
    let cfg = |eps: f32, step: f32| PgdConfig {
        eps,
        steps: 30,
        step_size: step,
        random_start: true,
        restarts: 1,
    };
    let o = pgd(
        &model,
        &x,
        &labels,
        &cfg(eps, 0.02),
        Norm::Linf,
        false,
        &mut rng,
    )
    .unwrap();
    close(&o.loss, &opt_linf, "PGD-linf");
    let o = pgd(
        &model,
        &x,
        &labels,
        &cfg(eps2, 0.05),
        Norm::L2,
        false,
        &mut rng,
    )
    .unwrap();
    close(&o.loss, &opt_l2, "PGD-l2");
    let o = apgd_outcome(&model, &x, &labels, &ApgdConfig::new(eps, 20, 1), &mut rng).unwrap();
    close(&o.loss, &opt_linf, "APGD-CE");
    assert!(o.fooled.iter().all(|f| !f));
}

/// A model whose logits are `model`'s but whose input gradient is zero: the extreme
/// case of gradient masking, which white-box attacks cannot see through.
struct Masked<'a>(&'a Model);

impl Classifier for Masked<'_> {
    fn logits(&self, x: &Tensor) -> rcc_attack::Result<Tensor> {
        self.0.logits(x)
    }
    fn loss_and_input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: AttackLoss,
    ) -> rcc_attack::Result<(Vec<f32>, Tensor, Tensor)> {
        let logits = self.0.logits(x)?;
        let zero = Tensor::zeros(x.shape());
        Ok((loss.per_example(&logits, labels)?, logits, zero))
    }
}

#[test]
fn transfer_sees_through_a_masked_gradient() {
    let (x, _) = images(40, 21);
    let model = Model::new(Arch::Mlp, 22);
    // Labels the model gets right, so clean accuracy is 100%.
    let labels = model.logits(&x).unwrap().argmax_rows();
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let mut cfg = pgd_cfg(0.3, 20, 0.03, 1);
    cfg.random_start = false;
    let attacks = [AttackSpec::PgdLinf(cfg)];
    let masked = Masked(&model);
    let white = evaluate(&masked, &data, &attacks, 16, 0).unwrap();
    assert_eq!(white.attacks[0].acc, 1.0, "a zero gradient moves nothing");
    let open = evaluate(&model, &data, &attacks, 16, 0).unwrap();
    let transfer = evaluate_transfer(&model, &masked, &data, &attacks, 16, 0, |_| {}).unwrap();
    assert!(
        open.attacks[0].acc < 0.5,
        "the attack works on the open model: {}",
        open.attacks[0].acc
    );
    // The same logits, so the points crafted on the open model fool the masked one.
    assert!(
        transfer.attacks[0].acc < 0.5,
        "transfer: {}",
        transfer.attacks[0].acc
    );
    assert!(transfer.attacks[0].transferred && !white.attacks[0].transferred);
    // The worst case of white-box and transfer is at most either.
    let mut both = white.clone();
    both.attacks.extend(transfer.attacks.iter().cloned());
    let worst = both.worst_case(&[0, 1]).unwrap();
    assert_eq!(worst, transfer.attacks[0].acc, "white-box moved nothing");
    assert_eq!(both.worst_case(&[]), None);
    assert_eq!(both.worst_case(&[0, 2]), None, "index out of range");
    // And a source with no gradient crafts nothing: the target's clean verdicts.
    let none = evaluate_transfer(&masked, &model, &data, &attacks, 16, 0, |_| {}).unwrap();
    assert_eq!(none.attacks[0].correct, none.clean_correct);
}

#[test]
fn transfer_is_judged_by_the_target() {
    let (x, labels) = images(30, 23);
    let (source, target) = (Model::new(Arch::Mlp, 24), Model::new(Arch::Mlp, 25));
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let attacks = [AttackSpec::PgdLinf(pgd_cfg(0.1, 5, 0.03, 2))];
    let t = evaluate_transfer(&source, &target, &data, &attacks, 8, 3, |_| {}).unwrap();
    let own = evaluate(&target, &data, &[], 8, 3).unwrap();
    assert_eq!(t.clean_correct, own.clean_correct);
    for (c, rob) in t.clean_correct.iter().zip(&t.attacks[0].correct) {
        assert!(*c || !*rob, "robust but not clean");
    }
    assert!(t.attacks[0].max_dist <= Norm::Linf.tolerance(0.1));
}

/// Each attack loss's gradient with respect to the logits equals central finite
/// differences of the naive reference (f64), on examples classified right and wrong.
#[test]
fn attack_losses_match_finite_differences_on_the_logits() {
    let mut rng = StdRng::seed_from_u64(30);
    // Pinned cases where DLR's indices coincide: the label is the first, second or third
    // largest logit, or below them (the best other class is then the first).
    let z4 = vec![3.0f32, -1.0, 1.5, 0.5];
    let pinned = (0..4).map(|y| (z4.clone(), y));
    let random = (0..40).map(|case| {
        let k = 3 + case % 8;
        let z: Vec<f32> = (0..k).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let y = rng.gen_range(0..k);
        (z, y)
    });
    for (z, y) in pinned.chain(random.collect::<Vec<_>>()) {
        let k = z.len();
        for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
            let (v, g) = loss.value_and_grad(&z, y).unwrap();
            assert!((v - naive_loss(loss, &z, y)).abs() < 1e-9, "{loss:?} {z:?}");
            let h = 1e-3f32;
            for i in 0..k {
                let (mut up, mut down) = (z.clone(), z.clone());
                up[i] += h;
                down[i] -= h;
                let step = up[i] as f64 - down[i] as f64;
                let fd = (naive_loss(loss, &up, y) - naive_loss(loss, &down, y)) / step;
                let tol = 1e-3 * fd.abs().max(1.0);
                assert!(
                    (g[i] as f64 - fd).abs() < tol,
                    "{loss:?} {z:?} y {y}: d/dz{i} {} vs {fd}",
                    g[i]
                );
            }
        }
    }
}

/// DLR is unchanged by shifting or scaling the logits, and its sign tells whether the
/// example is misclassified; the cross-entropy is neither.
#[test]
fn dlr_is_shift_and_scale_invariant_and_positive_when_fooled() {
    let z = [2.0f32, -1.0, 0.5, 3.0, -2.0];
    let dlr = |z: &[f32], y| AttackLoss::Dlr.value_and_grad(z, y).unwrap().0;
    for y in 0..5 {
        let moved: Vec<f32> = z.iter().map(|v| 7.0 * v - 3.0).collect();
        assert!((dlr(&z, y) - dlr(&moved, y)).abs() < 1e-6, "label {y}");
        assert_eq!(dlr(&z, y) > 0.0, y != 3, "label {y}: the argmax is class 3");
    }
    let ce = |z: &[f32]| AttackLoss::CrossEntropy.value_and_grad(z, 3).unwrap().0;
    assert!(ce(&z.map(|v| 7.0 * v)) < ce(&z) / 2.0);
}

#[test]
fn attack_losses_reject_bad_labels_and_too_few_classes() {
    assert!(AttackLoss::Dlr.value_and_grad(&[1.0, 2.0], 0).is_err());
    assert!(AttackLoss::CrossEntropy
        .value_and_grad(&[1.0, 2.0], 0)
        .is_ok());
    for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
        assert!(loss.value_and_grad(&[1.0, 2.0, 3.0], 3).is_err());
        assert!(loss.check(10, &[0, 9, 10]).is_err());
        // A non-finite logit anywhere is an error, not a loss.
        for bad in [f32::NAN, f32::INFINITY] {
            for at in 0..4 {
                let mut z = [1.0f32, 2.0, 3.0, 0.5];
                z[at] = bad;
                assert!(loss.value_and_grad(&z, 0).is_err(), "{loss:?} {z:?}");
            }
        }
    }
    // Through the trait: a two-class model has no DLR.
    let model = Linear {
        w: [[0.5; 16], [-0.5; 16]],
    };
    let x = Tensor::zeros(&[1, 1, 4, 4]);
    assert!(model
        .loss_and_input_grad(&x, &[0], AttackLoss::Dlr)
        .is_err());
}

/// `model` with its last layer scaled by 1e6: the same decisions, a saturated softmax.
fn saturated(model: &Model) -> Model {
    let mut saturated = model.clone();
    let views = saturated.net.params.views().to_vec();
    for v in &views[views.len() - 2..] {
        for j in v.range() {
            saturated.params[j] *= 1e6;
        }
    }
    saturated
}

/// A model whose softmax saturates: the same classifier with its last layer scaled by
/// 1e6, so every logit margin is in the hundreds of thousands and `softmax - onehot`
/// is exactly zero in f32. Every cross-entropy attack then sees a zero gradient and
/// moves nothing (gradient masking without any robustness); APGD-DLR, invariant to
/// the scale, fools the scaled model as well as the original.
#[test]
fn apgd_dlr_sees_through_a_saturated_softmax() {
    let (x, _) = images(32, 31);
    let model = Model::new(Arch::Mlp, 32);
    let saturated = saturated(&model);
    // Labels both models get right, so clean accuracy is 100%.
    let labels = model.logits(&x).unwrap().argmax_rows();
    assert_eq!(saturated.logits(&x).unwrap().argmax_rows(), labels);
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let apgd = |loss| AttackSpec::Apgd {
        loss,
        eps: 0.3,
        steps: 20,
        restarts: 1,
    };
    let attacks = [apgd(AttackLoss::CrossEntropy), apgd(AttackLoss::Dlr)];
    let (open, masked) = (
        evaluate(&model, &data, &attacks, 16, 0).unwrap(),
        evaluate(&saturated, &data, &attacks, 16, 0).unwrap(),
    );
    let acc = |r: &rcc_attack::Report, i: usize| r.attacks[i].acc;
    println!(
        "APGD-CE {} open, {} saturated; APGD-DLR {} open, {} saturated",
        acc(&open, 0),
        acc(&masked, 0),
        acc(&open, 1),
        acc(&masked, 1)
    );
    assert!(
        acc(&open, 0) < 0.5 && acc(&open, 1) < 0.5,
        "both work on the open model"
    );
    // Only APGD's random start moves a saturated example, and it alone fools few.
    assert!(
        acc(&masked, 0) > 0.8,
        "APGD-CE is masked: {}",
        acc(&masked, 0)
    );
    assert!(
        acc(&masked, 1) < 0.5,
        "APGD-DLR is not: {}",
        acc(&masked, 1)
    );
}

/// The backward-pass seed is the rows' `value_and_grad`, and an error leaves zeros in
/// the seed and the error in the values (a model's pass cannot fail mid-way).
#[test]
fn attack_loss_seed_is_the_rows_gradients_or_an_error() {
    let z = [3.0f32, -1.0, 1.5, 0.5, 2.0, 4.0];
    let labels = [0usize, 2];
    for loss in [AttackLoss::CrossEntropy, AttackLoss::Dlr] {
        let mut values = Ok(vec![]);
        let seed = loss.seed(&z, &labels, &mut values);
        let (v0, g0) = loss.value_and_grad(&z[..3], 0).unwrap();
        let (v1, g1) = loss.value_and_grad(&z[3..], 2).unwrap();
        assert_eq!(values.unwrap(), vec![v0 as f32, v1 as f32]);
        assert_eq!(seed, [g0, g1].concat());
        for (z, labels) in [(&z[..5], &labels[..]), (&z[..], &[0, 3][..])] {
            let mut values = Ok(vec![]);
            let seed = loss.seed(z, labels, &mut values);
            assert!(values.is_err(), "{loss:?} {z:?} {labels:?}");
            assert!(seed.len() == z.len() && seed.iter().all(|&g| g == 0.0));
        }
    }
}

/// The new attacks' accuracy is never above the clean accuracy, and AutoAttack's is at
/// most each of its components' (it runs them all, each on the points the earlier ones
/// left), on a random model that half the attacks can move.
#[test]
fn autoattack_is_at_most_each_component_and_clean() {
    let (x, labels) = images(48, 40);
    let model = Model::new(Arch::LenetAdv(1), 41);
    // Labels the model gets right for two thirds of the examples.
    let mut labels2 = model.logits(&x).unwrap().argmax_rows();
    for (i, l) in labels2.iter_mut().enumerate() {
        if i % 3 == 0 {
            *l = labels[i];
        }
    }
    let data = TensorExamples {
        x: &x,
        labels: &labels2,
    };
    let aa = AttackSpec::AutoAttack {
        eps: 0.02,
        fast: false,
    };
    let mut attacks = aa.components();
    attacks.push(aa);
    let r = evaluate(&model, &data, &attacks, 16, 3).unwrap();
    let last = r.attacks.last().unwrap();
    for a in &r.attacks {
        assert!(a.acc <= r.clean_acc, "{}", a.spec.describe());
        for (c, rob) in r.clean_correct.iter().zip(&a.correct) {
            assert!(*c || !*rob, "{}: robust but not clean", a.spec.describe());
        }
    }
    // Inside the ensemble each component draws from its own stream and sees only the
    // points still robust, so its verdicts are not exactly those of its solo run: the
    // ensemble may keep an example that a component alone broke by the luck of its
    // random start. Allow one such example.
    let best_single = r.attacks[..4].iter().map(|a| a.acc).fold(1.0, f64::min);
    assert!(
        last.acc <= best_single + 1.0 / 48.0,
        "{} vs {best_single}",
        last.acc
    );
    assert!(last.acc < r.clean_acc, "the ensemble moves something");
    assert!(aa.describe().contains("FAB-T") && aa.describe().contains("5000 queries"));
    let fast = AttackSpec::AutoAttack {
        eps: 0.02,
        fast: true,
    };
    assert_eq!(fast.components().len(), 3);
    assert!(fast.describe().contains("fast version"));
    assert!(!fast
        .components()
        .iter()
        .any(|c| matches!(c, AttackSpec::FabT(_))));
}

/// The targeted DLR's and the logit gap's gradients equal finite differences of their
/// naive definitions, and their labels must be (class, other target) pairs.
#[test]
fn targeted_losses_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(42);
    let naive = |loss: AttackLoss, z: &[f32], y: usize, t: usize| -> f64 {
        let z: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        match loss {
            AttackLoss::TargetedDlr => {
                let mut s = z.clone();
                s.sort_by(|a, b| b.total_cmp(a));
                -(z[y] - z[t]) / (s[0] - 0.5 * (s[2] + s[3]) + 1e-12)
            }
            _ => z[y] - z[t],
        }
    };
    for case in 0..60 {
        let k = 4 + case % 7;
        let z: Vec<f32> = (0..k).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let y = rng.gen_range(0..k);
        let t = (y + 1 + rng.gen_range(0..k - 1)) % k;
        for loss in [AttackLoss::TargetedDlr, AttackLoss::LogitGap] {
            let g = goal(y, t, k);
            assert_eq!(loss.true_label(g, k), y);
            let (v, grad) = loss.value_and_grad(&z, g).unwrap();
            assert!((v - naive(loss, &z, y, t)).abs() < 1e-9, "{loss:?}");
            for i in 0..k {
                let (mut up, mut down) = (z.clone(), z.clone());
                up[i] += 1e-3;
                down[i] -= 1e-3;
                let step = up[i] as f64 - down[i] as f64;
                let fd = (naive(loss, &up, y, t) - naive(loss, &down, y, t)) / step;
                assert!(
                    (grad[i] as f64 - fd).abs() < 1e-3 * fd.abs().max(1.0),
                    "{loss:?} case {case} d/dz{i}: {} vs {fd}",
                    grad[i]
                );
            }
        }
    }
    // A target equal to the class, a pair past k * k, too few classes: errors.
    let z = [1.0f32, 2.0, 3.0, 0.5];
    for loss in [AttackLoss::TargetedDlr, AttackLoss::LogitGap] {
        assert!(loss.value_and_grad(&z, goal(2, 2, 4)).is_err());
        assert!(loss.value_and_grad(&z, 16).is_err());
    }
    assert!(AttackLoss::TargetedDlr
        .value_and_grad(&z[..3], goal(0, 1, 3))
        .is_err());
    // Through the models: a gap's input gradient is the difference of two logits'.
    let (x, _) = images(3, 43);
    let model = Model::new(Arch::Mlp, 44);
    let goals = [goal(0, 1, 10), goal(3, 9, 10), goal(7, 2, 10)];
    let (gap, z, _) = model
        .loss_and_input_grad(&x, &goals, AttackLoss::LogitGap)
        .unwrap();
    for (i, &g) in goals.iter().enumerate() {
        let row = &z.data()[i * 10..(i + 1) * 10];
        assert!((gap[i] - (row[g / 10] - row[g % 10])).abs() < 1e-5);
    }
}

/// The square schedule halves p at the paper's iterations (of 10,000), rescaled.
#[test]
fn square_schedule_follows_the_paper() {
    let p = |it, q| square_fraction(0.8, it, q);
    assert_eq!(p(0, 10_000), 0.8);
    assert_eq!(p(10, 10_000), 0.8);
    assert_eq!(p(11, 10_000), 0.4);
    assert_eq!(p(51, 10_000), 0.2);
    assert_eq!(p(9000, 10_000), 0.8 / 512.0);
    // 5,000 queries: iteration 6 is the 12th of 10,000.
    assert_eq!(p(5, 5000), 0.8);
    assert_eq!(p(6, 5000), 0.4);
    assert_eq!(p(4999, 5000), 0.8 / 512.0);
}

/// Square reads only logits: on the saturated-softmax model (a zero cross-entropy
/// gradient everywhere) and on a model whose gradient is zeroed outright, where
/// APGD-CE moves nothing, it fools as many examples as on the open model, within a
/// few.
#[test]
fn square_sees_through_masked_gradients() {
    let (x, _) = images(32, 31);
    let model = Model::new(Arch::Mlp, 32);
    let saturated = saturated(&model);
    let labels = model.logits(&x).unwrap().argmax_rows();
    let data = TensorExamples {
        x: &x,
        labels: &labels,
    };
    let apgd_ce = AttackSpec::Apgd {
        loss: AttackLoss::CrossEntropy,
        eps: 0.1,
        steps: 20,
        restarts: 1,
    };
    let square = AttackSpec::Square(SquareConfig {
        queries: 1000,
        ..SquareConfig::new(0.1)
    });
    let masked = Masked(&model);
    let attacks = [apgd_ce, square];
    let open = evaluate(&model, &data, &attacks, 16, 0).unwrap();
    let sat = evaluate(&saturated, &data, &attacks, 16, 0).unwrap();
    let zero = evaluate(&masked, &data, &attacks, 16, 0).unwrap();
    assert!(
        open.attacks[1].acc < 0.5,
        "Square on the open model: {}",
        open.attacks[1].acc
    );
    // Without a gradient only APGD's random start moves a point, and it fools few.
    assert!(
        zero.attacks[0].acc > 0.9,
        "APGD-CE, zero gradient: {}",
        zero.attacks[0].acc
    );
    assert!(
        sat.attacks[0].acc > 0.8,
        "APGD-CE saturated: {}",
        sat.attacks[0].acc
    );
    // The same decisions, so the same random search: the same verdicts as on the open
    // model (up to margins that tie differently under the 1e6 scale).
    assert_eq!(zero.attacks[1].correct, open.attacks[1].correct);
    assert!(
        (sat.attacks[1].acc - open.attacks[1].acc).abs() <= 2.0 / 32.0,
        "Square saturated {} open {}",
        sat.attacks[1].acc,
        open.attacks[1].acc
    );
}

/// FAB-T on a two-class linear model finds the minimal l_inf distance to its decision
/// boundary, `|margin| / ||v||_1` (the box does not bind), within FAB's overshoot.
#[test]
fn fab_finds_the_minimal_distance_of_a_linear_model() {
    let mut rng = StdRng::seed_from_u64(50);
    // w_1 = w_0 + u with u summing to zero, so at x near 0.5 the margin u . x is small
    // and the boundary lies well inside the box.
    let mut w = [[0f32; 16]; 2];
    let u: Vec<f32> = (0..16).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mean = u.iter().sum::<f32>() / 16.0;
    for q in 0..16 {
        w[0][q] = rng.gen_range(-1.0..1.0);
        w[1][q] = w[0][q] + u[q] - mean;
    }
    let model = Linear { w };
    let x = Tensor::from_fn(&[6, 1, 4, 4], |_| rng.gen_range(0.45..0.55));
    let labels = model.logits(&x).unwrap().argmax_rows();
    let o = fab_targeted(&model, &x, &labels, &FabConfig::new(0.3)).unwrap();
    let z = model.logits(&x).unwrap();
    for (i, &y) in labels.iter().enumerate() {
        let margin = (z.data()[2 * i + y] - z.data()[2 * i + 1 - y]).abs();
        let v1: f32 = (0..16).map(|q| (w[0][q] - w[1][q]).abs()).sum();
        let exact = margin / v1;
        assert!(exact < 0.1, "the box must not bind: {exact}");
        let got = o.min_dist[i];
        assert!(
            got >= exact * (1.0 - 1e-4) && got <= exact * 1.01,
            "example {i}: FAB {got}, exact {exact}"
        );
        assert_eq!(o.fooled[i], got <= 0.3);
    }
}
