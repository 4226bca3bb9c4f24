//! A [`ModelSpec`] built for this CPU: a sparse or dense kernel per layer, convolutions
//! fused with the max pooling that follows them, and the activation buffers planned at
//! build time so that [`SparseModel::infer`] allocates nothing.

use crate::conv::{conv_input_grad, GridGeom, SparseConv};
use crate::csr::Csr;
use crate::dense::{DenseConv, DenseLinear};
use crate::error::{shape, Result};
use crate::linear::SparseLinear;
use crate::pool::{self, Pool};
use crate::spec::{LayerSpec, ModelSpec};
use std::sync::Mutex;

/// Which kernel each conv and linear layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// Sparse where the layer's density is below the crossover measured for its kind
    /// ([`conv_crossover`], [`LINEAR_CROSSOVER`]), dense elsewhere.
    Auto,
    /// CSR kernels everywhere.
    Sparse,
    /// Dense kernels everywhere (strided convolutions excepted: CSR only).
    Dense,
}

/// Density (non-zeros / weights) below which the CSR convolution beats the dense direct
/// kernel, batch 1, one core, by input channels. Measured with `cargo run --release -p
/// rcc-sparse --example crossover` on every conv shape of lenet5, lenet_adv:4 and vgg16:4
/// (Sapphire Rapids, AVX-512; docs/performance.md has the table). The dense
/// kernel reuses each input load across 8 output channels, which pays more the more
/// input channels there are: few-channel layers (conv1 of the LeNets, C = 1) cross at 50-
/// 60% density, 20-32 channels at about 40%, 64 and more at about 20%.
pub fn conv_crossover(in_channels: usize) -> f64 {
    match in_channels {
        0..=4 => 0.5,
        5..=16 => 0.45,
        17..=32 => 0.38,
        _ => 0.2,
    }
}

/// The same for linear layers: the CSR gather kernel against the dense row dot products,
/// which at batch 1 stream every weight once (memory-bound), so CSR wins until about
/// 65% density. 0.6 keeps a margin: a layer at 30% sparsity stays dense.
pub const LINEAR_CROSSOVER: f64 = 0.6;

#[derive(Clone, Debug)]
enum ConvKernel {
    Sparse(SparseConv),
    Dense(DenseConv),
}

#[derive(Clone, Debug)]
enum LinearKernel {
    Sparse(SparseLinear),
    Dense(DenseLinear),
}

#[derive(Clone, Debug)]
enum Op {
    /// `pool_next`: the next op is a max pool this convolution computes in its epilogue.
    Conv {
        kernel: ConvKernel,
        pool_next: bool,
    },
    Linear(LinearKernel),
    MaxPool(Pool),
    AvgPool(Pool),
    Relu,
    Flatten,
}

/// One layer as built: for reports and benches.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// `conv`, `linear`, `max_pool`, ...
    pub kind: &'static str,
    /// `csr` or `dense` for conv and linear layers, empty otherwise.
    pub kernel: &'static str,
    /// Output shape of one sample.
    pub out_shape: Vec<usize>,
    /// Weights, and how many are non-zero (0 for layers without weights).
    pub weights: usize,
    pub nnz: usize,
    /// Multiply-adds the chosen kernel executes per sample (dense: all weights).
    pub macs: usize,
    /// Bytes of the stored weights as the chosen kernel holds them (CSR: values, indices
    /// and row pointers; dense: f32 values), and of the biases.
    pub weight_bytes: usize,
    pub bias_bytes: usize,
}

/// The working memory of one inference: two ping-pong activation buffers, the padded
/// input of a convolution and one channel's output grid.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    a: Vec<f32>,
    b: Vec<f32>,
    xp: Vec<f32>,
    g: Vec<f32>,
}

impl Arena {
    pub fn bytes(&self) -> usize {
        4 * (self.a.len() + self.b.len() + self.xp.len() + self.g.len())
    }
}

/// A pruned network for batch-1, single-thread inference.
#[derive(Debug)]
pub struct SparseModel {
    arch: String,
    input: [usize; 3],
    ops: Vec<Op>,
    info: Vec<LayerInfo>,
    out_len: usize,
    act_len: usize,
    xp_len: usize,
    g_len: usize,
    arena: Mutex<Arena>,
}

impl SparseModel {
    /// [`ModelSpec::from_model`] then [`SparseModel::build`] with [`KernelChoice::Auto`].
    pub fn from_model(model: &rcc_nn::Model) -> Result<SparseModel> {
        SparseModel::build(&ModelSpec::from_model(model)?, KernelChoice::Auto)
    }

    /// A sparse model file (see [`crate::file`]), validated, built for this CPU.
    pub fn load(path: &std::path::Path, choice: KernelChoice) -> Result<SparseModel> {
        SparseModel::build(&crate::file::load(path)?, choice)
    }

    /// Builds the kernels of every layer, validating the spec's shapes first.
    pub fn build(spec: &ModelSpec, choice: KernelChoice) -> Result<SparseModel> {
        let shapes = spec.shapes()?;
        let (mut ops, mut info) = (vec![], vec![]);
        let [c0, h0, w0] = spec.input;
        let (mut act_len, mut xp_len, mut g_len) = (c0 * h0 * w0, 0, 0);
        for (i, layer) in spec.layers.iter().enumerate() {
            let (inp, out) = (&shapes[i], &shapes[i + 1]);
            let dense = |w: &Csr, strided: bool| match choice {
                KernelChoice::Sparse => false,
                KernelChoice::Dense => !strided,
                KernelChoice::Auto => {
                    let crossover = match layer {
                        LayerSpec::Conv { in_channels, .. } => conv_crossover(*in_channels),
                        _ => LINEAR_CROSSOVER,
                    };
                    !strided && 1.0 - w.sparsity() >= crossover
                }
            };
            let mut li = LayerInfo {
                kind: layer.kind(),
                kernel: "",
                out_shape: out.clone(),
                weights: 0,
                nnz: 0,
                macs: 0,
                weight_bytes: 0,
                bias_bytes: 0,
            };
            let op = match layer {
                LayerSpec::Conv {
                    w,
                    kh,
                    kw,
                    stride,
                    pad,
                    bias,
                    relu,
                    ..
                } => {
                    let input = [inp[0], inp[1], inp[2]];
                    let positions = out[1] * out[2];
                    (li.weights, li.nnz, li.bias_bytes) =
                        (w.rows() * w.cols(), w.nnz(), 4 * bias.len());
                    let kernel = if dense(w, *stride != 1) {
                        let dc = DenseConv::new(
                            &w.to_dense(),
                            w.rows(),
                            input,
                            *kh,
                            *kw,
                            *pad,
                            bias.clone(),
                            *relu,
                        )?;
                        xp_len = xp_len.max(dc.xp_len());
                        (li.kernel, li.macs, li.weight_bytes) =
                            ("dense", li.weights * positions, 4 * li.weights);
                        ConvKernel::Dense(dc)
                    } else {
                        let sc = SparseConv::new(
                            w.clone(),
                            input,
                            *kh,
                            *kw,
                            *stride,
                            *pad,
                            bias.clone(),
                            *relu,
                        )?;
                        xp_len = xp_len.max(sc.xp_len());
                        g_len = g_len.max(sc.grid_len());
                        (li.kernel, li.macs, li.weight_bytes) = ("csr", sc.macs(), w.bytes());
                        ConvKernel::Sparse(sc)
                    };
                    let pool_next = matches!(kernel, ConvKernel::Sparse(_))
                        && *stride == 1
                        && matches!(spec.layers.get(i + 1), Some(LayerSpec::MaxPool { .. }));
                    Op::Conv { kernel, pool_next }
                }
                LayerSpec::Linear { w, bias, relu } => {
                    (li.weights, li.nnz, li.bias_bytes) =
                        (w.rows() * w.cols(), w.nnz(), 4 * bias.len());
                    if dense(w, false) {
                        (li.kernel, li.macs, li.weight_bytes) =
                            ("dense", li.weights, 4 * li.weights);
                        Op::Linear(LinearKernel::Dense(DenseLinear::new(
                            w.to_dense(),
                            w.rows(),
                            w.cols(),
                            bias.clone(),
                            *relu,
                        )?))
                    } else {
                        (li.kernel, li.macs, li.weight_bytes) = ("csr", w.nnz(), w.bytes());
                        Op::Linear(LinearKernel::Sparse(SparseLinear::new(
                            w.clone(),
                            bias.clone(),
                            *relu,
                        )?))
                    }
                }
                LayerSpec::MaxPool { k, s } => {
                    Op::MaxPool(Pool::new([inp[0], inp[1], inp[2]], *k, *s))
                }
                LayerSpec::AvgPool { k, s } => {
                    Op::AvgPool(Pool::new([inp[0], inp[1], inp[2]], *k, *s))
                }
                LayerSpec::Relu => Op::Relu,
                LayerSpec::Flatten => Op::Flatten,
            };
            act_len = act_len.max(out.iter().product());
            ops.push(op);
            info.push(li);
        }
        let arena = Arena {
            a: vec![0.0; act_len],
            b: vec![0.0; act_len],
            xp: vec![0.0; xp_len],
            g: vec![0.0; g_len],
        };
        Ok(SparseModel {
            arch: spec.arch.clone(),
            input: spec.input,
            ops,
            info,
            out_len: shapes.last().unwrap().iter().product(),
            act_len,
            xp_len,
            g_len,
            arena: Mutex::new(arena),
        })
    }

    /// The architecture the model was converted from.
    pub fn arch(&self) -> &str {
        &self.arch
    }
    /// One sample's input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }
    /// Values per input sample.
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }
    /// Logits per sample.
    pub fn out_len(&self) -> usize {
        self.out_len
    }
    /// Each layer as built.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.info
    }

    /// A fresh arena, for callers that run several inferences at once (see
    /// [`SparseModel::infer_with`]).
    pub fn arena(&self) -> Arena {
        Arena {
            a: vec![0.0; self.act_len],
            b: vec![0.0; self.act_len],
            xp: vec![0.0; self.xp_len],
            g: vec![0.0; self.g_len],
        }
    }

    /// Stored conv and linear weights as the kernels hold them (see [`LayerInfo`]).
    pub fn weight_bytes(&self) -> usize {
        self.info.iter().map(|l| l.weight_bytes).sum()
    }
    /// Biases (never pruned).
    pub fn bias_bytes(&self) -> usize {
        self.info.iter().map(|l| l.bias_bytes).sum()
    }
    /// The same weights stored dense (f32).
    pub fn dense_weight_bytes(&self) -> usize {
        self.info.iter().map(|l| 4 * l.weights).sum()
    }
    /// The activation arena of one inference.
    pub fn arena_bytes(&self) -> usize {
        4 * (2 * self.act_len + self.xp_len + self.g_len)
    }
    /// Multiply-adds executed per sample by the conv and linear kernels.
    pub fn macs(&self) -> usize {
        self.info.iter().map(|l| l.macs).sum()
    }

    /// Logits `out [N, K]` for inputs `x [N, C, H, W]` (`N = x.len() / in_len`), using
    /// the model's own arena (locked for the call). Allocates nothing.
    pub fn infer(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let mut arena = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        self.infer_with(&mut arena, x, out)
    }

    /// As [`SparseModel::infer`], with a caller-owned arena from [`SparseModel::arena`].
    pub fn infer_with(&self, arena: &mut Arena, x: &[f32], out: &mut [f32]) -> Result<()> {
        let il = self.in_len();
        let n = x.len() / il;
        if x.len() != n * il || out.len() != n * self.out_len {
            return shape(
                "sparse model input and output",
                format!("N x {il} and N x {} values", self.out_len),
                format!("{} and {}", x.len(), out.len()),
            );
        }
        if arena.a.len() < self.act_len
            || arena.b.len() < self.act_len
            || arena.xp.len() < self.xp_len
            || arena.g.len() < self.g_len
        {
            return shape("sparse model arena", self.arena_bytes(), arena.bytes());
        }
        let Arena { a, b, xp, g } = arena;
        for (xs, ys) in x.chunks_exact(il).zip(out.chunks_exact_mut(self.out_len)) {
            let (mut cur, mut nxt) = (&mut a[..], &mut b[..]);
            let mut len = il;
            cur[..len].copy_from_slice(xs);
            let mut ops = self.ops.iter();
            while let Some(op) = ops.next() {
                match op {
                    Op::Conv {
                        kernel: ConvKernel::Sparse(c),
                        pool_next: true,
                    } => {
                        let Some(Op::MaxPool(p)) = ops.next() else {
                            unreachable!("pool_next is set only before a max pool")
                        };
                        len = p.out_len();
                        c.forward_max_pool(p, &cur[..c.in_len()], xp, g, &mut nxt[..len]);
                    }
                    Op::Conv { kernel, .. } => match kernel {
                        ConvKernel::Sparse(c) => {
                            len = c.out_len();
                            c.forward(&cur[..c.in_len()], xp, g, &mut nxt[..len]);
                        }
                        ConvKernel::Dense(c) => {
                            len = c.out_len();
                            c.forward(&cur[..c.in_len()], xp, &mut nxt[..len]);
                        }
                    },
                    Op::Linear(l) => {
                        let (fin, fout) = l.dims();
                        match l {
                            LinearKernel::Sparse(l) => l.forward(&cur[..fin], &mut nxt[..fout]),
                            LinearKernel::Dense(l) => l.forward(&cur[..fin], &mut nxt[..fout]),
                        }
                        len = fout;
                    }
                    Op::MaxPool(p) => {
                        pool::max_pool(p, &cur[..len], &mut nxt[..p.out_len()]);
                        len = p.out_len();
                    }
                    Op::AvgPool(p) => {
                        pool::avg_pool(p, &cur[..len], &mut nxt[..p.out_len()]);
                        len = p.out_len();
                    }
                    Op::Relu => {
                        cur[..len]
                            .iter_mut()
                            .for_each(|v| *v = crate::linear::relu(*v));
                        continue;
                    }
                    Op::Flatten => continue,
                }
                std::mem::swap(&mut cur, &mut nxt);
            }
            ys.copy_from_slice(&cur[..len]);
        }
        Ok(())
    }

    /// One sample's logits `z` and the input gradient of a loss of them: `seed` maps `z`
    /// to `dL/dz` (the attack crate's losses), and `dL/dx` is added into `dx` (a
    /// vector-Jacobian product). Runs the layers unfused and keeps every activation
    /// (allocates: this is the attack path, not the deployment path), then walks them
    /// back with the transposed kernels.
    pub fn input_vjp(
        &self,
        x: &[f32],
        seed: impl FnOnce(&[f32]) -> Vec<f32>,
        dx: &mut [f32],
    ) -> Result<Vec<f32>> {
        let il = self.in_len();
        if x.len() != il || dx.len() != il {
            return shape(
                "sparse model input gradient",
                format!("one sample of {il} values and a gradient as long"),
                format!("{} values, gradient {}", x.len(), dx.len()),
            );
        }
        // The transposed dense convolutions use the engine's grid, whose length is not
        // in the inference arena's plan (their forward needs no grid scratch).
        let dense_grid = self.ops.iter().filter_map(|op| match op {
            Op::Conv {
                kernel: ConvKernel::Dense(c),
                ..
            } => Some(c.grid.q()),
            _ => None,
        });
        let mut xp = vec![0.0; self.xp_len];
        let mut g = vec![0.0; dense_grid.fold(self.g_len, usize::max)];
        // acts[i] is the input of op i; acts[ops.len()] the logits.
        let mut acts: Vec<Vec<f32>> = vec![x.to_vec()];
        for op in &self.ops {
            let cur = acts.last().unwrap();
            let next = match op {
                Op::Conv {
                    kernel: ConvKernel::Sparse(c),
                    ..
                } => {
                    let mut y = vec![0.0; c.out_len()];
                    c.forward(cur, &mut xp, &mut g, &mut y);
                    y
                }
                Op::Conv {
                    kernel: ConvKernel::Dense(c),
                    ..
                } => {
                    let mut y = vec![0.0; c.out_len()];
                    c.forward(cur, &mut xp, &mut y);
                    y
                }
                Op::Linear(l) => {
                    let mut y = vec![0.0; l.dims().1];
                    match l {
                        LinearKernel::Sparse(l) => l.forward(cur, &mut y),
                        LinearKernel::Dense(l) => l.forward(cur, &mut y),
                    }
                    y
                }
                Op::MaxPool(p) => {
                    let mut y = vec![0.0; p.out_len()];
                    pool::max_pool(p, cur, &mut y);
                    y
                }
                Op::AvgPool(p) => {
                    let mut y = vec![0.0; p.out_len()];
                    pool::avg_pool(p, cur, &mut y);
                    y
                }
                Op::Relu => cur.iter().map(|&v| crate::linear::relu(v)).collect(),
                Op::Flatten => cur.clone(),
            };
            acts.push(next);
        }
        let mut dy = seed(acts.last().unwrap());
        if dy.len() != self.out_len {
            return shape(
                "sparse model input gradient",
                format!("a seed of {} values (one per logit)", self.out_len),
                format!("{} values", dy.len()),
            );
        }
        // acts[i] is op i's input, acts[i + 1] its output (for the ReLU masks).
        for (i, op) in self.ops.iter().enumerate().rev() {
            let (xin, y) = (&acts[i], &acts[i + 1]);
            let mut dxi = vec![0.0; xin.len()];
            match op {
                Op::Conv { kernel, .. } => {
                    let relu = match kernel {
                        ConvKernel::Sparse(c) => c.relu,
                        ConvKernel::Dense(c) => c.relu,
                    };
                    if relu {
                        mask_relu(&mut dy, y);
                    }
                    match kernel {
                        ConvKernel::Sparse(c) => c.input_grad(&dy, &mut xp, &mut g, &mut dxi),
                        ConvKernel::Dense(c) => {
                            let gm = dense_geometry(c);
                            let k = c.grid.off().len();
                            let taps =
                                |o| (0..k).map(move |t| (c.grid.off()[t] as u32, c.weight(o, t)));
                            conv_input_grad(gm, taps, &dy, &mut xp, &mut g, &mut dxi);
                        }
                    }
                }
                Op::Linear(l) => {
                    let relu = match l {
                        LinearKernel::Sparse(l) => l.relu,
                        LinearKernel::Dense(l) => l.relu,
                    };
                    if relu {
                        mask_relu(&mut dy, y);
                    }
                    match l {
                        LinearKernel::Sparse(l) => l.input_grad(&dy, &mut dxi),
                        LinearKernel::Dense(l) => l.input_grad(&dy, &mut dxi),
                    }
                }
                Op::MaxPool(p) => pool::max_pool_input_grad(p, xin, &dy, &mut dxi),
                Op::AvgPool(p) => pool::avg_pool_input_grad(p, &dy, &mut dxi),
                Op::Relu => {
                    mask_relu(&mut dy, y);
                    dxi.copy_from_slice(&dy);
                }
                Op::Flatten => dxi.copy_from_slice(&dy),
            }
            dy = dxi;
        }
        dx.iter_mut().zip(&dy).for_each(|(a, &b)| *a += b);
        Ok(acts.pop().unwrap_or_default())
    }
}

/// `dy *= relu'(pre-activation)`, read off the ReLU's output (PyTorch: 0 at 0).
fn mask_relu(dy: &mut [f32], y: &[f32]) {
    dy.iter_mut().zip(y).for_each(|(d, &v)| {
        if v <= 0.0 {
            *d = 0.0
        }
    });
}

fn dense_geometry(c: &DenseConv) -> GridGeom {
    let g = &c.grid;
    GridGeom {
        o: c.o,
        c: c.c,
        h: g.hp() - 2 * g.pad(),
        wd: g.wp() - 2 * g.pad(),
        pad: g.pad(),
        stride: 1,
        hp: g.hp(),
        wp: g.wp(),
        oh: g.oh(),
        ow: g.ow(),
        q: g.q(),
        xp_len: g.xp_len(),
    }
}

impl LinearKernel {
    fn dims(&self) -> (usize, usize) {
        match self {
            LinearKernel::Sparse(l) => (l.fin(), l.fout()),
            LinearKernel::Dense(l) => (l.fin, l.fout),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::linear::tests::{close, sparse_vec};
    use rcc_nn::layers::Layer;
    use rcc_nn::{Arch, Loss, Model};
    use rcc_tensor::Tensor;

    /// The cross-entropy's `dL/dz` for `label` (the attack crate's).
    fn ce_seed(z: &[f32], label: usize) -> Vec<f32> {
        let ce = rcc_attack::AttackLoss::CrossEntropy;
        ce.value_and_grad(z, label)
            .map(|(_, g)| g)
            .unwrap_or_default()
    }

    /// A model with non-trivial batch-norm statistics (so folding is exercised).
    pub fn model(arch: Arch, sparsity: f64, seed: u64) -> Model {
        let mut m = Model::new(arch, seed);
        rcc_compress::prune_by_magnitude(&mut m, sparsity);
        let noise = sparse_vec(m.buffers.len(), 0.0, seed + 100);
        for (i, l) in m.net.layers.clone().into_iter().enumerate() {
            if let Layer::BatchNorm2d {
                weight,
                bias,
                running_mean,
                running_var,
                ..
            } = l
            {
                for (v, n) in [(running_mean, 0.3f32), (running_var, 0.5)] {
                    let r = m.net.buffers.view(v).range();
                    for j in r {
                        m.buffers[j] = if n == 0.5 {
                            1.0 + n * noise[j]
                        } else {
                            n * noise[j]
                        };
                    }
                }
                for p in [weight, bias] {
                    let r = m.net.params.view(p).range();
                    for (k, j) in r.enumerate() {
                        m.params[j] += 0.2 * ((k + i) % 5) as f32 - 0.4;
                    }
                }
            }
        }
        m
    }

    pub const SPARSITIES: [f64; 7] = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99];
    const CHOICES: [KernelChoice; 3] = [
        KernelChoice::Auto,
        KernelChoice::Sparse,
        KernelChoice::Dense,
    ];

    fn input(arch: Arch, n: usize, seed: u64) -> Vec<f32> {
        let [c, h, w] = arch.input_shape();
        sparse_vec(n * c * h * w, 0.0, seed)
            .iter()
            .map(|v| v.abs())
            .collect()
    }

    /// Issue 5, must-show 1: every arch and sparsity, every kernel choice: the logits equal
    /// the dense engine's on the masked model, and so does the input gradient.
    #[test]
    fn logits_and_input_gradients_equal_the_dense_engine() {
        for arch in [Arch::Lenet5, Arch::LenetAdv(4), Arch::Vgg16(4), Arch::Mlp] {
            for sparsity in SPARSITIES {
                let m = model(arch, sparsity, 7);
                let spec = ModelSpec::from_model(&m).unwrap();
                let [c, h, w] = arch.input_shape();
                let n = 2;
                let x = input(arch, n, 11);
                let xt = Tensor::new(&[n, c, h, w], x.clone()).unwrap();
                let dense = m.infer(&xt).unwrap();
                let labels = [3, 8];
                let (_, want_dx) = m.input_grad(&xt, &labels, &Loss::CrossEntropy).unwrap();
                // The engine differentiates the batch mean.
                let want_dx: Vec<f32> = want_dx.data().iter().map(|g| g * n as f32).collect();
                for choice in CHOICES {
                    let sm = SparseModel::build(&spec, choice).unwrap();
                    let what = format!("{arch} at {sparsity}, {choice:?}");
                    let mut out = vec![f32::NAN; n * sm.out_len()];
                    sm.infer(&x, &mut out).unwrap();
                    assert!(
                        close(&out, dense.data(), 1e-5),
                        "{what}: {out:?} vs {:?}",
                        dense.data()
                    );
                    let il = sm.in_len();
                    for s in 0..n {
                        let mut dx = vec![0.0; il];
                        let ce = |z: &[f32]| ce_seed(z, labels[s]);
                        let logits = sm.input_vjp(&x[s * il..][..il], ce, &mut dx).unwrap();
                        assert!(close(&logits, &out[s * 10..][..10], 1e-5), "{what}");
                        assert!(
                            close(&dx, &want_dx[s * il..][..il], 1e-5),
                            "{what}: gradient of sample {s}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn per_sample_arena_gives_the_same_logits() {
        let sm = SparseModel::from_model(&model(Arch::Lenet5, 0.9, 1)).unwrap();
        let x = input(Arch::Lenet5, 3, 2);
        let mut all = vec![0.0; 30];
        sm.infer(&x, &mut all).unwrap();
        let mut arena = sm.arena();
        for s in 0..3 {
            let mut one = vec![0.0; 10];
            sm.infer_with(&mut arena, &x[s * 784..][..784], &mut one)
                .unwrap();
            assert_eq!(one, all[s * 10..][..10]);
        }
    }

    #[test]
    fn kernel_choice_follows_the_crossover() {
        for (sparsity, kernel) in [(0.3, "dense"), (0.95, "csr")] {
            let sm = SparseModel::from_model(&model(Arch::Lenet5, sparsity, 1)).unwrap();
            let kernels: Vec<_> = sm
                .layers()
                .iter()
                .filter(|l| l.weights > 0)
                .map(|l| l.kernel)
                .collect();
            assert!(
                kernels.iter().all(|&k| k == kernel),
                "{sparsity}: {kernels:?}"
            );
        }
    }

    /// Issue 5, must-show 3: lenet5 at 95% stores its weights in under 12% of the dense
    /// bytes (values, 16-bit indices and row pointers).
    #[test]
    fn lenet5_footprint_at_95_percent() {
        let sm = SparseModel::from_model(&model(Arch::Lenet5, 0.95, 1)).unwrap();
        let ratio = sm.weight_bytes() as f64 / sm.dense_weight_bytes() as f64;
        assert!(ratio < 0.12, "{ratio}");
        assert_eq!(sm.dense_weight_bytes(), 4 * 430_500);
        assert_eq!(sm.bias_bytes(), 4 * (20 + 50 + 500 + 10));
    }

    #[test]
    fn wrong_buffer_lengths_are_errors() {
        let sm = SparseModel::from_model(&Model::new(Arch::LenetAdv(1), 0)).unwrap();
        let mut out = vec![0.0; 10];
        assert!(sm.infer(&[0.0; 783], &mut out).is_err());
        assert!(sm.infer(&[0.0; 784], &mut out[..9]).is_err());
        let mut small = Arena::default();
        assert!(sm.infer_with(&mut small, &[0.0; 784], &mut out).is_err());
        let mut dx = vec![0.0; 784];
        let ok_seed = |z: &[f32]| vec![0.0; z.len()];
        assert!(sm.input_vjp(&[0.0; 784], ok_seed, &mut dx).is_ok());
        assert!(sm
            .input_vjp(&[0.0; 784], |_| vec![0.0; 9], &mut dx)
            .is_err());
        assert!(sm.input_vjp(&[0.0; 783], ok_seed, &mut dx).is_err());
        assert!(sm.input_vjp(&[0.0; 784], ok_seed, &mut dx[..783]).is_err());
    }
}
