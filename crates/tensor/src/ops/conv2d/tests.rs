//! Fast paths against the naive loops (proptest over random shapes), gradients against
//! finite differences, and the path choices.

use super::*;
use crate::testing::{check_grads, close, rand_tensor};
use crate::{Mode, Tape};
use proptest::prelude::*;

/// Runs the fast forward and backward (Train mode, all gradients) and compares them
/// with the naive loops.
fn fast_matches_naive(
    xs: [usize; 4],
    o: usize,
    k: (usize, usize),
    stride: usize,
    pad: usize,
    relu: bool,
    seed: u64,
) -> std::result::Result<(), String> {
    let ws = [o, xs[1], k.0, k.1];
    let g = Conv2dGeom::new(&xs, &ws, stride, pad).map_err(|e| e.to_string())?;
    let (x, w, b) = (
        rand_tensor(&xs, seed),
        rand_tensor(&ws, seed + 1),
        rand_tensor(&[o], seed + 2),
    );
    let mut params = w.data().to_vec();
    params.extend_from_slice(b.data());
    let mut t = Tape::new(&params, Mode::Train);
    let xv = t.input(x.clone(), true);
    let wv = t.param(0, &ws).unwrap();
    let bv = t.param(w.numel(), &[o]).unwrap();
    let y = t.conv2d_act(xv, wv, Some(bv), stride, pad, relu).unwrap();
    let dy = rand_tensor(t.shape(y), seed + 3).into_data();
    let mut pg = vec![0.0; params.len()];
    let grads = t.backward_seeded(y, &dy, Some(&mut pg)).unwrap();
    let mut y_ref = naive::forward(&g, x.data(), w.data(), Some(b.data()));
    // A fused ReLU: clamp the output and mask the output gradient.
    let dy_eff: Vec<f32> = if relu {
        y_ref.iter_mut().for_each(|v| *v = v.max(0.0));
        dy.iter()
            .zip(&y_ref)
            .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
            .collect()
    } else {
        dy.clone()
    };
    let (dx_ref, dw_ref, db_ref) = naive::backward(&g, x.data(), w.data(), &dy_eff);
    let ok = |name: &str, a: &[f32], b: &[f32]| {
        if close(a, b, 1e-5) {
            Ok(())
        } else {
            Err(format!(
                "{name} differs for x {xs:?} w {ws:?} s {stride} p {pad}"
            ))
        }
    };
    ok("y", t.value(y), &y_ref)?;
    ok("dx", grads.get(xv).unwrap(), &dx_ref)?;
    ok("dw", &pg[..w.numel()], &dw_ref)?;
    ok("db", &pg[w.numel()..], &db_ref)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn forward_and_backward_match_naive(
        n in 1usize..4, c in 1usize..5, h in 1usize..12, w in 1usize..12, o in 1usize..6,
        kh in 1usize..6, kw in 1usize..6, stride in 1usize..4, pad in 0usize..3, relu: bool, seed in 0u64..1000,
    ) {
        prop_assume!(h + 2 * pad >= kh && w + 2 * pad >= kw);
        fast_matches_naive([n, c, h, w], o, (kh, kw), stride, pad, relu, seed).map_err(TestCaseError::fail)?;
    }
}

/// A layer large enough that the batch is split into many chunks (one sample each
/// here), so the partial weight and bias gradients are reduced across chunks.
#[test]
fn many_chunks_with_fused_relu() {
    let g = Conv2dGeom::new(&[5, 8, 30, 30], &[4, 8, 5, 5], 1, 2).unwrap();
    assert_eq!(g.chunk(), 1);
    fast_matches_naive([5, 8, 30, 30], 4, (5, 5), 1, 2, true, 7).unwrap();
    let g = Conv2dGeom::new(&[19, 6, 20, 21], &[8, 6, 3, 3], 1, 1).unwrap();
    assert!(g.chunk() > 1 && g.chunk() < 19);
    fast_matches_naive([19, 6, 20, 21], 8, (3, 3), 1, 1, true, 8).unwrap();
}

/// The direct kernels and im2col + GEMM agree on the models' layer shapes (forward,
/// and every gradient with a fused ReLU).
#[test]
fn direct_equals_im2col_on_model_layers() {
    for (xs, ws, pad) in [
        ([9, 1, 28, 28], [20, 1, 5, 5], 0),
        ([5, 20, 12, 12], [50, 20, 5, 5], 0),
        ([9, 1, 28, 28], [8, 1, 5, 5], 2),
        ([7, 8, 14, 14], [16, 8, 5, 5], 2),
        ([3, 4, 8, 8], [12, 4, 3, 3], 1),
    ] {
        let g = Conv2dGeom::new(&xs, &ws, 1, pad).unwrap();
        assert!(direct_applies(&g));
        let (x, w, b) = (
            rand_tensor(&xs, 1),
            rand_tensor(&ws, 2),
            rand_tensor(&[ws[0]], 3),
        );
        let y1 = forward_direct(&g, x.data(), w.data(), Some(b.data()), true);
        let y2 = forward_im2col(&g, x.data(), w.data(), Some(b.data()), true);
        assert!(close(&y1, &y2, 1e-5), "forward {xs:?} {ws:?}");
        let dy = rand_tensor(&g.out_shape(), 4).into_data();
        let run = |direct: bool| {
            let (mut dx, mut dw, mut db) =
                (vec![0.0; x.numel()], vec![0.0; w.numel()], vec![0.0; ws[0]]);
            let grads = ConvGrads {
                dx: Some(&mut dx),
                dw: Some(&mut dw),
                db: Some(&mut db),
            };
            if direct {
                backward_direct(&g, x.data(), w.data(), &dy, Some(&y1), grads);
            } else {
                backward_im2col(&g, x.data(), w.data(), &dy, Some(&y1), grads);
            }
            (dx, dw, db)
        };
        let (a, b2) = (run(true), run(false));
        assert!(
            close(&a.0, &b2.0, 1e-5) && close(&a.1, &b2.1, 1e-5) && close(&a.2, &b2.2, 1e-5),
            "backward {xs:?} {ws:?}"
        );
    }
}

#[test]
fn path_choice_follows_the_measured_crossovers() {
    let p =
        |xs: [usize; 4], ws: [usize; 4], pad| paths(&Conv2dGeom::new(&xs, &ws, 1, pad).unwrap());
    if Isa::detect() == Isa::PORTABLE {
        return;
    }
    let lenet5_conv2 = p([1, 20, 12, 12], [50, 20, 5, 5], 0);
    assert!(
        lenet5_conv2.forward_direct
            && !lenet5_conv2.input_grad_direct
            && !lenet5_conv2.weight_grad_direct
    );
    let adv_conv1 = p([1, 1, 28, 28], [8, 1, 5, 5], 2);
    assert!(
        adv_conv1.forward_direct && !adv_conv1.input_grad_direct && adv_conv1.weight_grad_direct
    );
    let adv_conv2 = p([1, 8, 14, 14], [16, 8, 5, 5], 2);
    assert!(adv_conv2.input_grad_direct && !adv_conv2.weight_grad_direct);
    assert!(!paths(&Conv2dGeom::new(&[1, 3, 9, 9], &[4, 3, 3, 3], 2, 1).unwrap()).forward_direct);
}

/// Shrunk proptest failure: on the last output row, a run of the direct kernel's
/// store that lies entirely in the padding columns started past the end of `y`.
#[test]
fn regression_direct_store_in_padding_columns_of_last_row() {
    fast_matches_naive([1, 1, 7, 8], 1, (5, 5), 1, 1, false, 0).unwrap();
}

/// ReLU keeps NaN (a diverged run must not turn into zeros).
#[test]
fn fused_relu_propagates_nan() {
    let g = Conv2dGeom::new(&[1, 1, 4, 4], &[2, 1, 3, 3], 1, 1).unwrap();
    let mut x = vec![0.5f32; 16];
    x[5] = f32::NAN;
    let w = vec![1.0f32; 18];
    for y in [
        forward_direct(&g, &x, &w, None, true),
        forward_im2col(&g, &x, &w, None, true),
    ] {
        assert!(y.iter().any(|v| v.is_nan()));
    }
}

/// Padding larger than the kernel reach: whole rows of a patch are zero.
#[test]
fn padding_wider_than_kernel() {
    fast_matches_naive([2, 2, 3, 3], 3, (2, 2), 2, 3, false, 11).unwrap();
}

#[test]
fn gradients_match_finite_differences() {
    let ins = [
        rand_tensor(&[2, 3, 6, 5], 1),
        rand_tensor(&[4, 3, 3, 3], 2),
        rand_tensor(&[4], 3),
    ];
    check_grads(&ins, |t, v| t.conv2d(v[0], v[1], Some(v[2]), 2, 1));
    check_grads(&ins, |t, v| t.conv2d(v[0], v[1], None, 1, 0));
}

/// The fused ReLU gives exactly what conv2d followed by relu gives, forward and
/// backward. (A finite-difference check of the fused op would straddle ReLU kinks.)
#[test]
fn fused_relu_equals_conv_then_relu() {
    let run = |fused: bool| {
        let mut t = Tape::new(&[], Mode::InputGrad);
        let x = t.input(rand_tensor(&[3, 2, 7, 6], 1), true);
        let w = t.input(rand_tensor(&[4, 2, 3, 3], 2), true);
        let b = t.input(rand_tensor(&[4], 3), true);
        let y = if fused {
            t.conv2d_act(x, w, Some(b), 1, 1, true).unwrap()
        } else {
            let c = t.conv2d(x, w, Some(b), 1, 1).unwrap();
            t.relu(c).unwrap()
        };
        let dy = rand_tensor(t.shape(y), 4).into_data();
        let g = t.backward_seeded(y, &dy, None).unwrap();
        let all = |v| g.get(v).unwrap().to_vec();
        (t.value(y).to_vec(), all(x), all(w), all(b))
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn bit_identical_across_thread_counts() {
    let run = |threads: usize| {
        crate::threads::pool(threads).unwrap().install(|| {
            // 11 chunks of 2 samples.
            let (xs, ws) = ([21, 8, 24, 24], [6, 8, 5, 5]);
            let params = rand_tensor(&ws, 1).into_data();
            let mut t = Tape::new(&params, Mode::Train);
            let x = t.input(rand_tensor(&xs, 2), true);
            let w = t.param(0, &ws).unwrap();
            let y = t.conv2d(x, w, None, 1, 2).unwrap();
            let dy = rand_tensor(t.shape(y), 3).into_data();
            let mut pg = vec![0.0; params.len()];
            let grads = t.backward_seeded(y, &dy, Some(&mut pg)).unwrap();
            (t.value(y).to_vec(), grads.get(x).unwrap().to_vec(), pg)
        })
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

#[test]
fn bad_shapes_are_errors() {
    assert!(Conv2dGeom::new(&[1, 3, 5, 5], &[2, 4, 3, 3], 1, 0).is_err());
    assert!(Conv2dGeom::new(&[1, 3, 5, 5], &[2, 3, 3, 3], 0, 0).is_err());
    assert!(Conv2dGeom::new(&[1, 3, 2, 2], &[2, 3, 5, 5], 1, 1).is_err());
    assert!(Conv2dGeom::new(&[1, 3, 5], &[2, 3, 3, 3], 1, 0).is_err());
}
