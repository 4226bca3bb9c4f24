//! Runs natural training steps in a loop, for profilers:
//! `cargo run --release --example profile_step -- lenet5 1 200`.
use rand::{Rng, SeedableRng};
use rcc::nn::{Arch, Loss, Model, Sgd};
use rcc::tensor::{threads, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arch: Arch = args.get(1).map_or("lenet5", |s| s).parse().unwrap();
    let nthreads: usize = args.get(2).map_or(1, |s| s.parse().unwrap());
    let steps: usize = args.get(3).map_or(100, |s| s.parse().unwrap());
    let mode = args.get(4).map_or("natural", |s| s);
    let batch = 128;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Tensor::rand_uniform(&[batch, 1, 28, 28], 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
    let mut model = Model::new(arch, 0);
    let mut opt = Sgd::new(model.params.len(), 0.9, false, 0.0).unwrap();
    let mut grads = vec![0.0; model.params.len()];
    let pool = threads::pool(nthreads).unwrap();
    let mut prof = std::collections::BTreeMap::new();
    let t0 = std::time::Instant::now();
    pool.install(|| {
        for _ in 0..steps {
            if mode == "ops" {
                use rcc::nn::layers::Pass;
                use rcc::tensor::{Mode, Tape};
                let mut t = Tape::new(&model.params, Mode::Train);
                t.enable_profiling();
                let xv = t.input(x.clone(), false);
                let logits = model
                    .net
                    .forward(
                        &mut t,
                        xv,
                        &mut Pass::Train {
                            buffers: &mut model.buffers,
                            rng: &mut rng,
                        },
                    )
                    .unwrap();
                let l = t.cross_entropy(logits, &labels).unwrap();
                grads.fill(0.0);
                let g = t.backward(l, Some(&mut grads)).unwrap();
                for r in t.profile(Some(&g)) {
                    let e = prof
                        .entry((r.node, r.op, format!("{:?}", r.shape)))
                        .or_insert((0.0, 0.0));
                    e.0 += r.forward.as_secs_f64() * 1e3 / steps as f64;
                    e.1 += r.backward.as_secs_f64() * 1e3 / steps as f64;
                }
            } else if mode == "natural" {
                grads.fill(0.0);
                model
                    .train_grad(&x, &labels, &Loss::CrossEntropy, &mut grads, &mut rng)
                    .unwrap();
                opt.step(&mut model.params, &grads, 0.01);
            } else {
                model.input_grad(&x, &labels, &Loss::CrossEntropy).unwrap();
            }
        }
    });
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{arch} {mode} t{nthreads}: {:.0} samples/s",
        (steps * batch) as f64 / dt
    );
    let (mut tf, mut tb) = (0.0, 0.0);
    for ((node, op, shape), (f, b)) in &prof {
        println!("{node:>3} {op:<14} {shape:<18} fwd {f:7.3} ms  bwd {b:7.3} ms");
        tf += f;
        tb += b;
    }
    if !prof.is_empty() {
        println!("total fwd {tf:.3} ms, bwd {tb:.3} ms per step");
    }
}
