//! Engine benches: conv2d kernels at the LeNet layer shapes and whole training steps.
//!
//! Ids encode subject / shape or arch / batch / threads. Conv throughput is in FLOPs
//! (criterion prints "elem/s": read it as FLOP/s); train steps in samples.
//!
//! Run: `cargo bench --bench engine` (filter: `cargo bench --bench engine -- train_step`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcc::attack::{pgd_linf, PgdConfig};
use rcc::nn::{Arch, Loss, Model, Sgd};
use rcc::tensor::ops::conv2d::{self, Conv2dGeom};
use rcc::tensor::{threads, Tensor};
use std::time::Duration;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::rand_uniform(shape, 0.0, 1.0, &mut rng)
}

mod conv {
    use super::*;

    /// (name, input [C, H, W], output channels, kernel, padding): the convolutions of
    /// lenet5 and lenet_adv:4.
    const LAYERS: [(&str, [usize; 3], usize, usize, usize); 4] = [
        ("lenet5.conv1", [1, 28, 28], 20, 5, 0),
        ("lenet5.conv2", [20, 12, 12], 50, 5, 0),
        ("lenet_adv4.conv1", [1, 28, 28], 8, 5, 2),
        ("lenet_adv4.conv2", [8, 14, 14], 16, 5, 2),
    ];

    pub fn bench(c: &mut Criterion) {
        let batch = 128;
        for threads in [1, 2] {
            let pool = threads::pool(threads).unwrap();
            for (name, [ci, h, w], co, k, pad) in LAYERS {
                let xs = [batch, ci, h, w];
                let ws = [co, ci, k, k];
                let g = Conv2dGeom::new(&xs, &ws, 1, pad).unwrap();
                let (x, wt, b) = (random(&xs, 1), random(&ws, 2), random(&[co], 3));
                let dy = random(&g.out_shape(), 4).into_data();
                let flops = 2 * g.macs() as u64;
                let id = format!("{name}/b{batch}/t{threads}");

                let mut grp = c.benchmark_group("conv2d_forward");
                grp.throughput(Throughput::Elements(flops));
                grp.bench_function(BenchmarkId::from_parameter(&id), |bch| {
                    pool.install(|| {
                        bch.iter(|| conv2d::forward(&g, x.data(), wt.data(), Some(b.data()), false))
                    })
                });
                grp.finish();

                // Backward as in training a hidden layer: weight, bias and input gradients.
                let mut grp = c.benchmark_group("conv2d_backward");
                grp.throughput(Throughput::Elements(2 * flops));
                grp.bench_function(BenchmarkId::from_parameter(&id), |bch| {
                    let (mut dx, mut dw, mut db) =
                        (vec![0.0; x.numel()], vec![0.0; wt.numel()], vec![0.0; co]);
                    pool.install(|| {
                        bch.iter(|| {
                            let grads = conv2d::ConvGrads {
                                dx: Some(&mut dx),
                                dw: Some(&mut dw),
                                db: Some(&mut db),
                            };
                            conv2d::backward(&g, x.data(), wt.data(), &dy, None, grads);
                        })
                    })
                });
                grp.finish();
            }
        }
    }
}

mod train_step {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let batch = 128;
        for (label, arch) in [("lenet5", Arch::Lenet5), ("lenet_adv4", Arch::LenetAdv(4))] {
            let x = random(&[batch, 1, 28, 28], 1);
            let mut rng = StdRng::seed_from_u64(2);
            let labels: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
            for threads in [1, 2] {
                let pool = threads::pool(threads).unwrap();
                let mut grp = c.benchmark_group("train_step");
                grp.throughput(Throughput::Elements(batch as u64));

                // Natural training step: forward, backward with parameter gradients, SGD.
                let mut model = Model::new(arch, 0);
                let mut opt = Sgd::new(model.params.len(), 0.9, false, 0.0).unwrap();
                let mut grads = vec![0.0; model.params.len()];
                grp.bench_function(
                    BenchmarkId::from_parameter(format!("{label}/natural/b{batch}/t{threads}")),
                    |bch| {
                        pool.install(|| {
                            bch.iter(|| {
                                grads.fill(0.0);
                                model
                                    .train_grad(
                                        &x,
                                        &labels,
                                        &Loss::CrossEntropy,
                                        &mut grads,
                                        &mut rng,
                                    )
                                    .unwrap();
                                opt.step(&mut model.params, &grads, 0.01);
                            })
                        })
                    },
                );

                // PGD-10 adversarial training step (Madry: eps 0.3, step 0.075, random
                // start): 10 input-gradient steps, then a natural step on the result.
                let mut model = Model::new(arch, 0);
                let mut opt = Sgd::new(model.params.len(), 0.9, false, 0.0).unwrap();
                let pgd = PgdConfig {
                    eps: 0.3,
                    steps: 10,
                    step_size: 0.075,
                    random_start: true,
                    restarts: 1,
                };
                grp.bench_function(
                    BenchmarkId::from_parameter(format!("{label}/pgd10/b{batch}/t{threads}")),
                    |bch| {
                        pool.install(|| {
                            bch.iter(|| {
                                let xa = pgd_linf(&model, &x, &labels, &pgd, &mut rng).unwrap();
                                grads.fill(0.0);
                                model
                                    .train_grad(
                                        &xa,
                                        &labels,
                                        &Loss::CrossEntropy,
                                        &mut grads,
                                        &mut rng,
                                    )
                                    .unwrap();
                                opt.step(&mut model.params, &grads, 0.01);
                            })
                        })
                    },
                );

                // Input-gradient step: what every attack iteration costs.
                let model = Model::new(arch, 0);
                grp.bench_function(
                    BenchmarkId::from_parameter(format!("{label}/input_grad/b{batch}/t{threads}")),
                    |bch| {
                        pool.install(|| {
                            bch.iter(|| model.input_grad(&x, &labels, &Loss::CrossEntropy).unwrap())
                        })
                    },
                );
                grp.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = conv::bench, train_step::bench
}
criterion_main!(benches);
