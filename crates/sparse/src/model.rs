//! A sequential network converted once into sparse layers, with its activation buffers
//! planned at build time: `infer` allocates nothing.

use crate::conv::SparseConv;
use crate::error::{shape, Error, Result};
use crate::linear::{relu, SparseLinear};
use rcc_nn::layers::Layer;
use rcc_nn::Model;
use std::sync::Mutex;

/// One step of the sparse network.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Conv(SparseConv),
    Linear(SparseLinear),
    /// Max pooling over `[c, h, w]`, no padding, floor mode.
    MaxPool {
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        oh: usize,
        ow: usize,
    },
    /// A ReLU that could not be fused into the preceding layer.
    Relu,
}

/// The working memory of one inference: two ping-pong activation buffers and the
/// padded-input scratch of the convolutions, each sized for the largest layer.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    a: Vec<f32>,
    b: Vec<f32>,
    xp: Vec<f32>,
}

impl Arena {
    pub fn bytes(&self) -> usize {
        4 * (self.a.len() + self.b.len() + self.xp.len())
    }
}

/// A pruned network for batch-1, single-thread inference.
#[derive(Debug)]
pub struct SparseModel {
    ops: Vec<Op>,
    in_len: usize,
    out_len: usize,
    act_len: usize,
    xp_len: usize,
    dense_weight_bytes: usize,
    arena: Mutex<Arena>,
}

impl SparseModel {
    /// Converts a sequential model (conv, linear, ReLU, max pool, flatten, dropout).
    /// Batch norm is not folded yet: models with it are an error.
    pub fn from_model(model: &Model) -> Result<SparseModel> {
        let net = &model.net;
        let [c0, h0, w0] = net.arch.input_shape();
        let mut dims = vec![c0, h0, w0];
        let mut ops = vec![];
        let (mut act_len, mut xp_len, mut dense_bytes) = (c0 * h0 * w0, 0, 0);
        let val = |id| &model.params[net.params.view(id).range()];
        let mut i = 0;
        while i < net.layers.len() {
            let layer = &net.layers[i];
            let fuse = layer.fuses_relu() && net.layers.get(i + 1) == Some(&Layer::Relu);
            i += 1 + usize::from(fuse);
            match *layer {
                Layer::Conv2d {
                    weight,
                    bias,
                    stride,
                    padding,
                } => {
                    let ws = &net.params.view(weight).shape;
                    let (ws, input) = match (&ws[..], &dims[..]) {
                        (&[o, c, kh, kw], &[ci, h, w]) if c == ci => ([o, c, kh, kw], [c, h, w]),
                        _ => {
                            return shape(
                                "conv2d layer",
                                format!("weight [O, {}, KH, KW]", dims[0]),
                                format!("{ws:?} on input {dims:?}"),
                            )
                        }
                    };
                    let conv = SparseConv::from_dense(
                        val(weight),
                        ws,
                        input,
                        bias.map(val),
                        stride,
                        padding,
                        fuse,
                    )?;
                    dims = vec![ws[0], conv.oh, conv.ow];
                    xp_len = xp_len.max(conv.xp_len());
                    dense_bytes += 4 * ws.iter().product::<usize>();
                    ops.push(Op::Conv(conv));
                }
                Layer::Linear { weight, bias } => {
                    let ws = &net.params.view(weight).shape;
                    let fin: usize = dims.iter().product();
                    if dims.len() != 1 || ws.len() != 2 || ws[1] != fin {
                        return shape(
                            "linear layer",
                            format!("a flattened input of {} values", ws.get(1).unwrap_or(&0)),
                            format!("{dims:?}"),
                        );
                    }
                    let l =
                        SparseLinear::from_dense(val(weight), ws[0], ws[1], bias.map(val), fuse)?;
                    dims = vec![ws[0]];
                    dense_bytes += 4 * ws[0] * ws[1];
                    ops.push(Op::Linear(l));
                }
                Layer::MaxPool2d { kernel, stride } => {
                    let (c, h, w) = match dims[..] {
                        [c, h, w] if kernel > 0 && stride > 0 && h >= kernel && w >= kernel => {
                            (c, h, w)
                        }
                        _ => {
                            return shape(
                                "max_pool2d layer",
                                format!("an input [C, H, W] of at least {kernel} x {kernel}"),
                                format!("{dims:?}"),
                            )
                        }
                    };
                    let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
                    dims = vec![c, oh, ow];
                    ops.push(Op::MaxPool {
                        c,
                        h,
                        w,
                        k: kernel,
                        s: stride,
                        oh,
                        ow,
                    });
                }
                Layer::Relu => ops.push(Op::Relu),
                Layer::Flatten => dims = vec![dims.iter().product()],
                Layer::Dropout { .. } => {}
                Layer::BatchNorm2d { .. } => {
                    return Err(Error::Unsupported(format!(
                    "batch norm in {} (folding it into the preceding conv is not implemented yet)",
                    net.arch
                )))
                }
                Layer::AvgPool2d { .. } => {
                    return Err(Error::Unsupported(format!(
                        "average pooling in {}",
                        net.arch
                    )))
                }
            }
            act_len = act_len.max(dims.iter().product());
        }
        let arena = Arena {
            a: vec![0.0; act_len],
            b: vec![0.0; act_len],
            xp: vec![0.0; xp_len],
        };
        Ok(SparseModel {
            ops,
            in_len: c0 * h0 * w0,
            out_len: dims.iter().product(),
            act_len,
            xp_len,
            dense_weight_bytes: dense_bytes,
            arena: Mutex::new(arena),
        })
    }

    /// Values per input sample.
    pub fn in_len(&self) -> usize {
        self.in_len
    }
    /// Logits per sample.
    pub fn out_len(&self) -> usize {
        self.out_len
    }

    /// A fresh arena, for callers that run several inferences at once (see
    /// [`SparseModel::infer_with`]).
    pub fn arena(&self) -> Arena {
        Arena {
            a: vec![0.0; self.act_len],
            b: vec![0.0; self.act_len],
            xp: vec![0.0; self.xp_len],
        }
    }

    /// Weight storage of the conv and linear layers: CSR values, indices and row pointers
    /// (biases not counted).
    pub fn weight_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Conv(c) => c.w.bytes(),
                Op::Linear(l) => l.w.bytes(),
                _ => 0,
            })
            .sum()
    }
    /// The same weights stored dense (f32).
    pub fn dense_weight_bytes(&self) -> usize {
        self.dense_weight_bytes
    }
    /// The activation arena (both activation buffers and the padded-input scratch).
    pub fn arena_bytes(&self) -> usize {
        4 * (2 * self.act_len + self.xp_len)
    }
    /// Multiply-adds executed per sample by the conv and linear layers.
    pub fn macs(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Conv(c) => c.macs(),
                Op::Linear(l) => l.macs(),
                _ => 0,
            })
            .sum()
    }

    /// Logits `out [N, K]` for inputs `x [N, C, H, W]` (`N = x.len() / in_len`), using
    /// the model's own arena (locked for the call). Allocates nothing.
    pub fn infer(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let mut arena = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        self.infer_with(&mut arena, x, out)
    }

    /// As [`SparseModel::infer`], with a caller-owned arena from [`SparseModel::arena`].
    pub fn infer_with(&self, arena: &mut Arena, x: &[f32], out: &mut [f32]) -> Result<()> {
        let n = x.len() / self.in_len.max(1);
        if x.len() != n * self.in_len || out.len() != n * self.out_len {
            return shape(
                "sparse model input and output",
                format!("N x {} and N x {} values", self.in_len, self.out_len),
                format!("{} and {}", x.len(), out.len()),
            );
        }
        if arena.a.len() < self.act_len
            || arena.b.len() < self.act_len
            || arena.xp.len() < self.xp_len
        {
            return shape("sparse model arena", self.arena_bytes(), arena.bytes());
        }
        let Arena { a, b, xp } = arena;
        for (xs, ys) in x
            .chunks_exact(self.in_len)
            .zip(out.chunks_exact_mut(self.out_len))
        {
            let (mut cur, mut nxt) = (&mut a[..], &mut b[..]);
            let mut len = self.in_len;
            cur[..len].copy_from_slice(xs);
            for op in &self.ops {
                match op {
                    Op::Conv(conv) => {
                        let ol = conv.out_len();
                        conv.forward(&cur[..len], xp, &mut nxt[..ol]);
                        len = ol;
                    }
                    Op::Linear(l) => {
                        let ol = l.fout();
                        l.forward(&cur[..len], &mut nxt[..ol]);
                        len = ol;
                    }
                    Op::MaxPool {
                        c,
                        h,
                        w,
                        k,
                        s,
                        oh,
                        ow,
                    } => {
                        max_pool(&cur[..len], [*c, *h, *w], *k, *s, [*oh, *ow], nxt);
                        len = c * oh * ow;
                    }
                    Op::Relu => {
                        cur[..len].iter_mut().for_each(|v| *v = relu(*v));
                        continue;
                    }
                }
                std::mem::swap(&mut cur, &mut nxt);
            }
            ys.copy_from_slice(&cur[..len]);
        }
        Ok(())
    }
}

/// Max pooling of `x [c, h, w]` into `y [c, oh, ow]`, as the engine's: the first maximum in
/// row-major order, compared with strict `>`.
fn max_pool(
    x: &[f32],
    [c, h, w]: [usize; 3],
    k: usize,
    s: usize,
    [oh, ow]: [usize; 2],
    y: &mut [f32],
) {
    for ci in 0..c {
        let plane = &x[ci * h * w..][..h * w];
        let out = &mut y[ci * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = plane[oy * s * w + ox * s];
                for ki in 0..k {
                    for &v in &plane[(oy * s + ki) * w + ox * s..][..k] {
                        if v > m {
                            m = v;
                        }
                    }
                }
                out[oy * ow + ox] = m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::tests::{close, sparse_vec};
    use rcc_nn::Arch;
    use rcc_tensor::Tensor;

    /// Zeroes the `sparsity` fraction of smallest-magnitude weights of every conv and
    /// linear layer (per layer; biases kept).
    fn prune(model: &mut Model, sparsity: f64) {
        let views: Vec<_> = model
            .net
            .layers
            .iter()
            .filter_map(|l| match *l {
                Layer::Conv2d { weight, .. } | Layer::Linear { weight, .. } => {
                    Some(model.net.params.view(weight).range())
                }
                _ => None,
            })
            .collect();
        for r in views {
            let w = &mut model.params[r];
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
            let k = (w.len() as f64 * sparsity).round() as usize;
            for &i in &order[..k] {
                w[i] = 0.0;
            }
        }
    }

    #[test]
    fn logits_equal_dense_inference() {
        for arch in [Arch::Lenet5, Arch::LenetAdv(4), Arch::Mlp] {
            for sparsity in [0.0, 0.5, 0.9, 0.99] {
                let mut model = Model::new(arch, 7);
                prune(&mut model, sparsity);
                let sm = SparseModel::from_model(&model).unwrap();
                let n = 3;
                let x = sparse_vec(n * sm.in_len(), 0.0, 11)
                    .into_iter()
                    .map(|v| v.abs())
                    .collect::<Vec<_>>();
                let [c, h, w] = arch.input_shape();
                let dense = model
                    .infer(&Tensor::new(&[n, c, h, w], x.clone()).unwrap())
                    .unwrap();
                let mut out = vec![f32::NAN; n * sm.out_len()];
                sm.infer(&x, &mut out).unwrap();
                assert!(
                    close(&out, dense.data(), 1e-5),
                    "{arch} at {sparsity}: {out:?} vs {:?}",
                    dense.data()
                );
                // Per sample, with a caller-owned arena: the same logits.
                let mut arena = sm.arena();
                let mut one = vec![0.0; sm.out_len()];
                sm.infer_with(&mut arena, &x[..sm.in_len()], &mut one)
                    .unwrap();
                assert_eq!(one, out[..sm.out_len()]);
                // Footprint: CSR bytes shrink with sparsity.
                assert!(sm.weight_bytes() > 0 && sm.dense_weight_bytes() > 0);
                if sparsity >= 0.9 {
                    assert!(sm.weight_bytes() * 4 < sm.dense_weight_bytes());
                }
            }
        }
    }

    /// Issue 5's footprint target: lenet5 at 95% under 12% of the dense bytes.
    #[test]
    fn lenet5_footprint_at_95_percent() {
        let mut model = Model::new(Arch::Lenet5, 1);
        prune(&mut model, 0.95);
        let sm = SparseModel::from_model(&model).unwrap();
        let ratio = sm.weight_bytes() as f64 / sm.dense_weight_bytes() as f64;
        assert!(ratio < 0.12, "{ratio}");
    }

    #[test]
    fn batch_norm_archs_are_unsupported_for_now() {
        let e = SparseModel::from_model(&Model::new(Arch::Vgg16(1), 0)).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("batch norm"), "{e}");
    }

    #[test]
    fn wrong_buffer_lengths_are_errors() {
        let sm = SparseModel::from_model(&Model::new(Arch::LenetAdv(1), 0)).unwrap();
        let mut out = vec![0.0; 10];
        assert!(sm.infer(&[0.0; 783], &mut out).is_err());
        assert!(sm.infer(&[0.0; 784], &mut out[..9]).is_err());
        let mut small = Arena::default();
        assert!(sm.infer_with(&mut small, &[0.0; 784], &mut out).is_err());
    }
}
