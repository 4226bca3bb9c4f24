//! Training or input-gradient steps in a loop, for profilers, with an optional per-op
//! profile from the tape:
//!
//! ```sh
//! cargo run --release --example profile_step -- lenet5 1 200 natural     # samples/s
//! cargo run --release --example profile_step -- lenet5 1 50 ops          # per-op, Train
//! cargo run --release --example profile_step -- lenet5 1 50 ops-input    # per-op, InputGrad
//! ```
use rand::{Rng, SeedableRng};
use rcc::nn::layers::Pass;
use rcc::nn::{Arch, Loss, Model, Sgd};
use rcc::tensor::{threads, Mode, Tape, Tensor};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arch: Arch = args.get(1).map_or("lenet5", |s| s).parse().unwrap();
    let nthreads: usize = args.get(2).map_or(1, |s| s.parse().unwrap());
    let steps: usize = args.get(3).map_or(100, |s| s.parse().unwrap());
    let mode = args.get(4).map_or("natural", |s| s).to_string();
    let batch = 128;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let [c, h, w] = arch.input_shape();
    let x = Tensor::rand_uniform(&[batch, c, h, w], 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
    let mut model = Model::new(arch, 0);
    let mut opt = Sgd::new(model.params.len(), 0.9, false, 0.0).unwrap();
    let mut grads = vec![0.0; model.params.len()];
    let pool = threads::pool(nthreads).unwrap();
    // (node, op, shape) -> (forward ms, backward ms), averaged over the steps.
    let mut prof: BTreeMap<(usize, &str, String), (f64, f64)> = BTreeMap::new();
    let t0 = std::time::Instant::now();
    pool.install(|| {
        for _ in 0..steps {
            match mode.as_str() {
                "natural" => {
                    grads.fill(0.0);
                    model
                        .train_grad(&x, &labels, &Loss::CrossEntropy, &mut grads, &mut rng)
                        .unwrap();
                    opt.step(&mut model.params, &grads, 0.01);
                }
                "input" => {
                    model.input_grad(&x, &labels, &Loss::CrossEntropy).unwrap();
                }
                "ops" | "ops-input" => {
                    let train = mode == "ops";
                    let mut t = Tape::new(
                        &model.params,
                        if train { Mode::Train } else { Mode::InputGrad },
                    );
                    t.enable_profiling();
                    let xv = t.input_copy(&x, !train);
                    let mut pass = if train {
                        Pass::Train {
                            buffers: &mut model.buffers,
                            rng: &mut rng,
                        }
                    } else {
                        Pass::Eval {
                            buffers: &model.buffers,
                        }
                    };
                    let logits = model.net.forward(&mut t, xv, &mut pass).unwrap();
                    let l = t.cross_entropy(logits, &labels).unwrap();
                    grads.fill(0.0);
                    let g = t.backward(l, train.then_some(&mut grads[..])).unwrap();
                    for r in t.profile(Some(&g)) {
                        let e = prof
                            .entry((r.node, r.op, format!("{:?}", r.shape)))
                            .or_default();
                        e.0 += r.forward.as_secs_f64() * 1e3 / steps as f64;
                        e.1 += r.backward.as_secs_f64() * 1e3 / steps as f64;
                    }
                }
                other => panic!("unknown mode {other}: natural, input, ops, ops-input"),
            }
        }
    });
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{arch} {mode} b{batch} t{nthreads}: {:.0} samples/s",
        (steps * batch) as f64 / dt
    );
    let (mut tf, mut tb) = (0.0, 0.0);
    for ((node, op, shape), (f, b)) in &prof {
        if *op != "param" {
            println!("{node:>3} {op:<14} {shape:<20} fwd {f:7.3} ms  bwd {b:7.3} ms");
        }
        tf += f;
        tb += b;
    }
    if !prof.is_empty() {
        println!("total: fwd {tf:.3} ms, bwd {tb:.3} ms per step");
    }
}
