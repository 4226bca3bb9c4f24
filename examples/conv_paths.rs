//! Times each conv2d pass on both paths (direct, im2col) at the model layer shapes, batch
//! 128, one thread: `cargo run --release --example conv_paths`.
use rcc::tensor::ops::conv2d::*;
use rcc::tensor::Tensor;
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed().as_secs_f64() < 0.3 {
        f();
        n += 1;
    }
    t0.elapsed().as_secs_f64() / n as f64 * 1e3
}

fn main() {
    let layers = [
        ("lenet5.conv1", [128, 1, 28, 28], [20, 1, 5, 5], 0),
        ("lenet5.conv2", [128, 20, 12, 12], [50, 20, 5, 5], 0),
        ("lenet_adv4.conv1", [128, 1, 28, 28], [8, 1, 5, 5], 2),
        ("lenet_adv4.conv2", [128, 8, 14, 14], [16, 8, 5, 5], 2),
        ("vgg16w4.conv4", [128, 32, 16, 16], [32, 32, 3, 3], 1),
    ];
    println!(
        "{:<18} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "layer", "path", "fwd ms", "dx ms", "dw+db ms", "GFLOP/s"
    );
    for (name, xs, ws, pad) in layers {
        let g = Conv2dGeom::new(&xs, &ws, 1, pad).unwrap();
        let x = Tensor::from_fn(&xs, |i| ((i * 7919) % 1000) as f32 / 1000.0);
        let w = Tensor::from_fn(&ws, |i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5);
        let dy = Tensor::from_fn(&g.out_shape(), |i| ((i * 31) % 100) as f32 / 100.0 - 0.5);
        let (mut dx, mut dw, mut db) =
            (vec![0.0; x.numel()], vec![0.0; w.numel()], vec![0.0; ws[0]]);
        for direct in [true, false] {
            let fwd = time(|| {
                let y = if direct {
                    forward_direct(&g, x.data(), w.data(), None, true)
                } else {
                    forward_im2col(&g, x.data(), w.data(), None, true)
                };
                rcc::tensor::scratch::give(y);
            });
            let mut bwd = |dxo: bool| {
                time(|| {
                    let grads = if dxo {
                        ConvGrads {
                            dx: Some(&mut dx),
                            dw: None,
                            db: None,
                        }
                    } else {
                        ConvGrads {
                            dx: None,
                            dw: Some(&mut dw),
                            db: Some(&mut db),
                        }
                    };
                    if direct {
                        backward_direct(&g, x.data(), w.data(), dy.data(), None, grads)
                    } else {
                        backward_im2col(&g, x.data(), w.data(), dy.data(), None, grads)
                    }
                })
            };
            let (tdx, tdw) = (bwd(true), bwd(false));
            let gf = 2.0 * g.macs() as f64 * 3.0 / ((fwd + tdx + tdw) * 1e-3) / 1e9;
            println!(
                "{name:<18} {:>5} {fwd:9.3} {tdx:9.3} {tdw:9.3} {gf:9.1}",
                if direct { "dir" } else { "i2c" }
            );
        }
    }
}
