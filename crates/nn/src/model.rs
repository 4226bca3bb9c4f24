//! Models by arch string: the layer list, the parameter layout (PyTorch names, shapes and
//! `named_parameters()` order) and the values, in one contiguous buffer.

use crate::arch::Arch;
use crate::error::{file_err, Error, Result};
use crate::layers::{Layer, Pass};
use crate::params::ParamLayout;
use crate::safetensors::SafeTensors;
use rand::rngs::StdRng;
use rand::RngCore;
use rand::{Rng, SeedableRng};
use rcc_tensor::{DistillCfg, Mode, Tape, Tensor, Var};
use std::path::Path;

/// A network's structure: layers and where each parameter lives. Holds no values.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub arch: Arch,
    pub layers: Vec<Layer>,
    /// Trainable parameters, in `named_parameters()` order.
    pub params: ParamLayout,
    /// Non-trainable state: batch-norm running means and variances.
    pub buffers: ParamLayout,
}

/// Builds the layer list while laying the parameters out contiguously.
struct Builder {
    layers: Vec<Layer>,
    params: ParamLayout,
    buffers: ParamLayout,
}

impl Builder {
    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize, padding: usize, bias: bool) {
        let weight = self
            .params
            .push(&format!("{name}.weight"), &[cout, cin, k, k]);
        let bias = bias.then(|| self.params.push(&format!("{name}.bias"), &[cout]));
        self.layers.push(Layer::Conv2d {
            weight,
            bias,
            stride: 1,
            padding,
        });
    }
    fn linear(&mut self, name: &str, fin: usize, fout: usize) {
        let weight = self.params.push(&format!("{name}.weight"), &[fout, fin]);
        let bias = Some(self.params.push(&format!("{name}.bias"), &[fout]));
        self.layers.push(Layer::Linear { weight, bias });
    }
    fn bn(&mut self, name: &str, c: usize) {
        let weight = self.params.push(&format!("{name}.weight"), &[c]);
        let bias = self.params.push(&format!("{name}.bias"), &[c]);
        let running_mean = self.buffers.push(&format!("{name}.running_mean"), &[c]);
        let running_var = self.buffers.push(&format!("{name}.running_var"), &[c]);
        self.layers.push(Layer::BatchNorm2d {
            weight,
            bias,
            running_mean,
            running_var,
            eps: 1e-5,
            momentum: 0.1,
        });
    }
    fn pool(&mut self) {
        self.layers.push(Layer::MaxPool2d {
            kernel: 2,
            stride: 2,
        });
    }
    fn relu(&mut self) {
        self.layers.push(Layer::Relu);
    }
}

impl Network {
    /// The architecture exactly as ../shared/reference/README.md defines it.
    pub fn new(arch: Arch) -> Network {
        let mut b = Builder {
            layers: vec![],
            params: ParamLayout::default(),
            buffers: ParamLayout::default(),
        };
        match arch {
            Arch::LenetAdv(w) => {
                b.conv("conv1", 1, 2 * w, 5, 2, true);
                b.relu();
                b.pool();
                b.conv("conv2", 2 * w, 4 * w, 5, 2, true);
                b.relu();
                b.pool();
                b.layers.push(Layer::Flatten);
                b.linear("fc1", 4 * w * 7 * 7, 64 * w);
                b.relu();
                b.linear("fc2", 64 * w, 10);
            }
            Arch::Lenet5 => {
                b.conv("conv1", 1, 20, 5, 0, true);
                b.relu();
                b.pool();
                b.conv("conv2", 20, 50, 5, 0, true);
                b.relu();
                b.pool();
                b.layers.push(Layer::Flatten);
                b.linear("fc1", 800, 500);
                b.relu();
                b.linear("fc2", 500, 10);
            }
            Arch::Mlp => {
                b.layers.push(Layer::Flatten);
                b.linear("fc1", 784, 300);
                b.relu();
                b.linear("fc2", 300, 100);
                b.relu();
                b.linear("fc3", 100, 10);
            }
            Arch::Vgg16(w) => {
                // 64,64,M,128,128,M,256x3,M,512x3,M,512x3,M scaled by W/16.
                const PLAN: [usize; 18] = [
                    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
                ];
                let (mut cin, mut k) = (3, 1);
                for c in PLAN {
                    if c == 0 {
                        b.pool();
                        continue;
                    }
                    let cout = c / 16 * w;
                    b.conv(&format!("conv{k}"), cin, cout, 3, 1, false);
                    b.bn(&format!("bn{k}"), cout);
                    b.relu();
                    (cin, k) = (cout, k + 1);
                }
                b.layers.push(Layer::Flatten);
                b.linear("fc", cin, 10);
            }
        }
        Network {
            arch,
            layers: b.layers,
            params: b.params,
            buffers: b.buffers,
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The layers to run, with each ReLU that directly follows a conv or linear layer
    /// folded into it: (layer, fused relu).
    fn plan(&self) -> impl Iterator<Item = (&Layer, bool)> {
        let mut i = 0;
        std::iter::from_fn(move || {
            let layer = self.layers.get(i)?;
            let fuse = layer.fuses_relu() && self.layers.get(i + 1) == Some(&Layer::Relu);
            i += 1 + usize::from(fuse);
            Some((layer, fuse))
        })
    }

    /// Records the whole network on the tape: `x [N, C, H, W]` -> logits `[N, 10]`.
    pub fn forward(&self, t: &mut Tape, mut x: Var, pass: &mut Pass) -> Result<Var> {
        for (layer, relu) in self.plan() {
            x = layer.forward(t, x, relu, &self.params, &self.buffers, pass)?;
        }
        Ok(x)
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != 4 || shape[1..] != self.arch.input_shape() {
            let [c, h, w] = self.arch.input_shape();
            return Err(Error::Tensor(rcc_tensor::Error::Shape {
                op: "model input",
                expected: format!("[N, {c}, {h}, {w}] for {}", self.arch),
                got: format!("{shape:?}"),
            }));
        }
        Ok(())
    }
}

/// The training loss: cross-entropy, or the distillation loss against fixed teacher
/// logits (method.md section 1).
#[derive(Clone, Copy, Debug)]
pub enum Loss<'a> {
    CrossEntropy,
    Distill {
        teacher_logits: &'a [f32],
        cfg: DistillCfg,
    },
}

impl Loss<'_> {
    fn record(&self, t: &mut Tape, logits: Var, labels: &[usize]) -> Result<Var> {
        Ok(match self {
            Loss::CrossEntropy => t.cross_entropy(logits, labels)?,
            Loss::Distill {
                teacher_logits,
                cfg,
            } => t.distill_loss(logits, labels, teacher_logits, *cfg)?,
        })
    }
}

/// What a training-mode pass returns.
#[derive(Clone, Debug)]
pub struct StepOutput {
    pub loss: f32,
    /// Logits `[N, 10]`, row-major.
    pub logits: Vec<f32>,
}

/// A network with its values: all trainable parameters in one buffer, all buffers
/// (running statistics) in another.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub net: Network,
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
}

impl Model {
    /// PyTorch's default initialisation, seeded: conv and linear weights kaiming-uniform
    /// with a = sqrt(5), i.e. U(+-1/sqrt(fan_in)); biases U(+-1/sqrt(fan_in)); batch-norm
    /// weight 1, bias 0, running mean 0, running variance 1.
    pub fn new(arch: Arch, seed: u64) -> Model {
        let net = Network::new(arch);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = vec![0.0; net.params.len()];
        let mut buffers = vec![0.0; net.buffers.len()];
        for layer in &net.layers {
            match *layer {
                Layer::Conv2d { weight, bias, .. } | Layer::Linear { weight, bias } => {
                    let wv = net.params.view(weight);
                    let fan_in: usize = wv.shape[1..].iter().product();
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    for v in &mut params[wv.range()] {
                        *v = rng.gen_range(-bound..bound);
                    }
                    if let Some(b) = bias {
                        for v in &mut params[net.params.view(b).range()] {
                            *v = rng.gen_range(-bound..bound);
                        }
                    }
                }
                Layer::BatchNorm2d {
                    weight,
                    running_var,
                    ..
                } => {
                    params[net.params.view(weight).range()].fill(1.0);
                    buffers[net.buffers.view(running_var).range()].fill(1.0);
                }
                _ => {}
            }
        }
        Model {
            net,
            params,
            buffers,
        }
    }

    pub fn arch(&self) -> Arch {
        self.net.arch
    }

    /// Inference: logits for a batch, no tape, batch norm on running statistics.
    pub fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.net.check_input(x.shape())?;
        let mut h = x.clone();
        for (layer, relu) in self.net.plan() {
            h = layer.infer(
                h,
                relu,
                &self.net.params,
                &self.params,
                &self.net.buffers,
                &self.buffers,
            )?;
        }
        Ok(h)
    }

    /// The loss and its gradient with respect to the input (what an attack step needs),
    /// in evaluation mode: no parameter gradients are computed or stored.
    pub fn input_grad(
        &self,
        x: &Tensor,
        labels: &[usize],
        loss: &Loss,
    ) -> Result<(StepOutput, Tensor)> {
        let (mut t, xv, logits) = self.eval_tape(x)?;
        let l = loss.record(&mut t, logits, labels)?;
        let mut grads = t.backward(l, None)?;
        let g = grads.take(xv).unwrap_or_else(|| vec![0.0; x.numel()]);
        let out = StepOutput {
            loss: t.scalar(l),
            logits: t.value(logits).to_vec(),
        };
        Ok((out, Tensor::new(x.shape(), g)?))
    }

    /// The logits `z` (`[N, K]`, row-major) and the input gradient of any loss of them:
    /// `seed` maps `z` to `dL/dz`, and the backward pass starts from it (a
    /// vector-Jacobian product). Evaluation mode, no parameter gradients, as
    /// [`Model::input_grad`]. Attacks use it for losses the tape has no op for.
    pub fn input_vjp(
        &self,
        x: &Tensor,
        seed: impl FnOnce(&[f32]) -> Vec<f32>,
    ) -> Result<(Vec<f32>, Tensor)> {
        let (t, xv, logits) = self.eval_tape(x)?;
        let z = t.value(logits).to_vec();
        let mut grads = t.backward_seeded(logits, &seed(&z), None)?;
        let g = grads.take(xv).unwrap_or_else(|| vec![0.0; x.numel()]);
        Ok((z, Tensor::new(x.shape(), g)?))
    }

    /// The forward pass of [`Model::input_grad`] and [`Model::input_vjp`]: a tape that
    /// records the input's gradient only, the input's node and the logits' node.
    fn eval_tape(&self, x: &Tensor) -> Result<(Tape<'_>, Var, Var)> {
        self.net.check_input(x.shape())?;
        let mut t = Tape::new(&self.params, Mode::InputGrad);
        let xv = t.input_copy(x, true);
        let logits = self.net.forward(
            &mut t,
            xv,
            &mut Pass::Eval {
                buffers: &self.buffers,
            },
        )?;
        Ok((t, xv, logits))
    }

    /// A training-mode pass: batch statistics (running statistics updated), dropout on,
    /// parameter gradients *added* into `grads` (the caller zeroes it between steps).
    pub fn train_grad(
        &mut self,
        x: &Tensor,
        labels: &[usize],
        loss: &Loss,
        grads: &mut [f32],
        rng: &mut dyn RngCore,
    ) -> Result<StepOutput> {
        self.net.check_input(x.shape())?;
        let mut t = Tape::new(&self.params, Mode::Train);
        let xv = t.input_copy(x, false);
        let logits = self.net.forward(
            &mut t,
            xv,
            &mut Pass::Train {
                buffers: &mut self.buffers,
                rng,
            },
        )?;
        let l = loss.record(&mut t, logits, labels)?;
        t.backward(l, Some(grads))?;
        Ok(StepOutput {
            loss: t.scalar(l),
            logits: t.value(logits).to_vec(),
        })
    }

    /// [`Model::train_grad`] for the TRADES loss (Zhang et al. 2019; the tape's
    /// `trades_loss`): two training-mode passes on one tape, the clean batch `x` and its
    /// adversarial version `x_adv`, whose parameter gradients both flow into `grads` (as
    /// in their reference code, where both passes are differentiated). Each pass keeps
    /// its own batch statistics and dropout masks.
    ///
    /// With `distill = Some((teacher_logits, cfg))` the loss is method.md section 1's
    /// with TRADES in place of the cross-entropy:
    /// `(1 - a) TRADES + a t^2 KL(softmax(T/t) || softmax(z'/t))`, the student's logits
    /// `z'` on the adversarial batch (the distillation op at alpha 1 is exactly the
    /// second term). Returns the loss and the adversarial batch's logits.
    #[allow(clippy::too_many_arguments)]
    pub fn train_grad_trades(
        &mut self,
        x: &Tensor,
        x_adv: &Tensor,
        labels: &[usize],
        beta: f32,
        distill: Option<(&[f32], DistillCfg)>,
        grads: &mut [f32],
        rng: &mut dyn RngCore,
    ) -> Result<StepOutput> {
        self.net.check_input(x.shape())?;
        if x_adv.shape() != x.shape() {
            return Err(Error::Config(format!(
                "TRADES: an adversarial batch of shape {:?} for a clean batch of shape {:?}",
                x_adv.shape(),
                x.shape()
            )));
        }
        let mut t = Tape::new(&self.params, Mode::Train);
        let mut logits = [None, None];
        for (slot, input) in logits.iter_mut().zip([x, x_adv]) {
            let xv = t.input_copy(input, false);
            *slot = Some(self.net.forward(
                &mut t,
                xv,
                &mut Pass::Train {
                    buffers: &mut self.buffers,
                    rng,
                },
            )?);
        }
        let [Some(clean), Some(adv)] = logits else {
            unreachable!("both passes ran")
        };
        let mut l = t.trades_loss(clean, adv, labels, beta)?;
        if let Some((teacher, cfg)) = distill {
            let kl_cfg = DistillCfg { alpha: 1.0, ..cfg };
            let kl = t.distill_loss(adv, labels, teacher, kl_cfg)?;
            let weight = |t: &mut Tape, w: f32| t.input(Tensor::scalar(w), false);
            let (wa, wb) = (weight(&mut t, 1.0 - cfg.alpha), weight(&mut t, cfg.alpha));
            let (a, b) = (t.mul(l, wa)?, t.mul(kl, wb)?);
            l = t.add(a, b)?;
        }
        t.backward(l, Some(grads))?;
        Ok(StepOutput {
            loss: t.scalar(l),
            logits: t.value(adv).to_vec(),
        })
    }

    /// All parameters and buffers under their PyTorch names, the arch in the metadata.
    pub fn to_safetensors(&self, metadata: &[(&str, &str)]) -> Result<SafeTensors> {
        let mut st = SafeTensors::new();
        for (layout, values) in [
            (&self.net.params, &self.params),
            (&self.net.buffers, &self.buffers),
        ] {
            for v in layout.views() {
                st.push_f32(&v.name, &v.shape, values[v.range()].to_vec())?;
            }
        }
        st.metadata.insert("format".into(), "rcc-model-v1".into());
        st.metadata.insert("arch".into(), self.arch().to_string());
        st.metadata
            .insert("num_params".into(), self.net.num_params().to_string());
        for (k, v) in metadata {
            st.metadata.insert(k.to_string(), v.to_string());
        }
        Ok(st)
    }

    /// Writes the model atomically (temporary file, then rename).
    pub fn save(&self, path: &Path, metadata: &[(&str, &str)]) -> Result<()> {
        self.to_safetensors(metadata)?.write(path)
    }

    /// Reads a model file. The arch comes from the file's metadata, or from `arch` for
    /// files written elsewhere (a PyTorch `state_dict` saved with safetensors).
    pub fn load(path: &Path, arch: Option<Arch>) -> Result<Model> {
        Model::from_file_safetensors(&SafeTensors::read(path)?, path, arch)
    }

    /// [`Model::load`] of a file already in memory (`path` only names it in errors).
    pub fn parse(bytes: &[u8], path: &Path, arch: Option<Arch>) -> Result<Model> {
        Model::from_file_safetensors(&SafeTensors::parse(bytes, path)?, path, arch)
    }

    fn from_file_safetensors(st: &SafeTensors, path: &Path, arch: Option<Arch>) -> Result<Model> {
        let arch =
            match (arch, st.metadata.get("arch")) {
                (Some(a), _) => a,
                (None, Some(s)) => s.parse().map_err(|e| Error::File {
                    path: path.into(),
                    field: "__metadata__.arch".into(),
                    problem: format!("{e}"),
                })?,
                (None, None) => return file_err(
                    path,
                    "__metadata__.arch",
                    "no architecture in the file's metadata; name one (e.g. --arch lenet_adv:4)",
                ),
            };
        Model::from_safetensors(st, path, arch, true)
    }

    /// The model of `arch` with every parameter (and buffer) taken from `st` by name,
    /// shape checked. F64 values are rounded to f32. With `strict`, a tensor the arch does
    /// not have is an error (except PyTorch's `*.num_batches_tracked` counters).
    pub fn from_safetensors(
        st: &SafeTensors,
        path: &Path,
        arch: Arch,
        strict: bool,
    ) -> Result<Model> {
        let net = Network::new(arch);
        // Every tensor is found and shape-checked before the parameter buffer is
        // allocated: the arch comes from the file's metadata, so a 4-byte "vgg16:64"
        // must not cost a 941 MB allocation before the file is found to hold nothing.
        let mut found = [vec![], vec![]];
        for (layout, found) in [&net.params, &net.buffers].into_iter().zip(&mut found) {
            for v in layout.views() {
                let (shape, data) = st.f32_any(&v.name, path)?;
                if shape != v.shape {
                    return file_err(
                        path,
                        &v.name,
                        format!("{arch} expects shape {:?}, the file has {shape:?}", v.shape),
                    );
                }
                found.push((v.range(), data));
            }
        }
        let mut model = Model {
            params: vec![0.0; net.params.len()],
            buffers: vec![0.0; net.buffers.len()],
            net,
        };
        let [params, buffers] = found;
        for (range, data) in params {
            model.params[range].copy_from_slice(&data);
        }
        for (range, data) in buffers {
            model.buffers[range].copy_from_slice(&data);
        }
        if strict {
            let known = |n: &str| {
                model.net.params.find(n).is_some()
                    || model.net.buffers.find(n).is_some()
                    || n.ends_with(".num_batches_tracked")
            };
            if let Some(e) = st.entries.iter().find(|e| !known(&e.name)) {
                return file_err(path, &e.name, format!("{arch} has no tensor of this name"));
            }
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arch in a file's metadata names the model's size: a file that names the
    /// largest arch but holds no tensor is refused by name, before the parameter buffer
    /// of that arch (941 MB for vgg16:64; `tests/alloc_bound.rs` measures it) is allocated.
    #[test]
    fn an_arch_without_its_tensors_is_refused_by_name() {
        let mut st = SafeTensors::new();
        st.metadata.insert("arch".into(), "vgg16:64".into());
        let bytes = st.to_bytes().unwrap();
        let err = Model::parse(&bytes, Path::new("tiny.safetensors"), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tiny.safetensors") && text.contains("missing tensor"),
            "{text}"
        );
    }

    #[test]
    fn parameter_counts_match_method_md() {
        for (arch, n) in [
            ("lenet_adv:1", 13_514),
            ("lenet_adv:2", 52_506),
            ("lenet_adv:4", 206_954),
            ("lenet_adv:8", 821_706),
            ("lenet_adv:16", 3_274_634),
            ("lenet5", 431_080),
            ("mlp", 266_610),
            ("vgg16:1", 58_422),
            ("vgg16:2", 231_746),
            ("vgg16:4", 923_130),
            ("vgg16:16", 14_724_042),
        ] {
            assert_eq!(
                Network::new(arch.parse().unwrap()).num_params(),
                n,
                "{arch}"
            );
        }
        assert_eq!(Network::new(Arch::Vgg16(1)).buffers.len(), 528);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let (a, b, c) = (
            Model::new(Arch::Lenet5, 1),
            Model::new(Arch::Lenet5, 1),
            Model::new(Arch::Lenet5, 2),
        );
        assert_eq!(a, b);
        assert_ne!(a.params, c.params);
        let fc1 = a.net.params.find("fc1.weight").unwrap();
        let bound = 1.0 / 800f32.sqrt();
        let vals = &a.params[fc1.range()];
        assert!(vals.iter().all(|v| v.abs() <= bound));
        // U(-b, b) has standard deviation b/sqrt(3).
        let sd = (vals.iter().map(|v| v * v).sum::<f32>() / vals.len() as f32).sqrt();
        assert!((sd - bound / 3f32.sqrt()).abs() < 0.01 * bound, "{sd}");
    }

    /// TRADES's parameter gradient flows through both passes: it matches central
    /// differences of the loss along random directions of the parameters (the loss
    /// recomputed by inference and the op's forward kernel), and with beta 0 it is the
    /// clean batch's cross-entropy gradient.
    #[test]
    fn trades_gradient_flows_through_both_passes() {
        use rand::{Rng, SeedableRng};
        // Weights scaled up and two unrelated batches, so that the softmaxes are sharp
        // and far apart: the KL term, and its gradient through the clean pass, are then
        // of the order of the cross-entropy's (with the initial weights both softmaxes
        // are near uniform and a missing clean-pass KL gradient would go unnoticed).
        let mut m = Model::new(Arch::LenetAdv(1), 5);
        m.params.iter_mut().for_each(|w| *w *= 2.5);
        let x = Tensor::from_fn(&[3, 1, 28, 28], |i| ((i * 37) % 101) as f32 / 101.0);
        let xa = Tensor::from_fn(&[3, 1, 28, 28], |i| ((i * 53) % 89) as f32 / 89.0);
        let labels = [3, 0, 7];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let beta = 6.0;
        let teacher: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let cfg = DistillCfg {
            alpha: 0.5,
            temperature: 2.0,
        };
        for distill in [None, Some((&teacher[..], cfg))] {
            let mut g = vec![0f32; m.params.len()];
            let out = m
                .train_grad_trades(&x, &xa, &labels, beta, distill, &mut g, &mut rng)
                .unwrap();
            let loss_at = |m: &Model| -> f64 {
                let (z, za) = (m.infer(&x).unwrap(), m.infer(&xa).unwrap());
                let trades =
                    rcc_tensor::ops::trades::forward(z.data(), za.data(), &labels, 10, beta).0;
                let Some((t, c)) = distill else {
                    return trades as f64;
                };
                let kl_cfg = DistillCfg { alpha: 1.0, ..c };
                let kl = rcc_tensor::ops::distill::forward(za.data(), t, &labels, 10, kl_cfg).0;
                (1.0 - c.alpha as f64) * trades as f64 + c.alpha as f64 * kl as f64
            };
            let l0 = loss_at(&m);
            assert!((out.loss as f64 - l0).abs() < 1e-4 * (1.0 + l0.abs()));
            for dir in 0..4 {
                let v: Vec<f32> = (0..m.params.len())
                    .map(|_| rng.gen_range(-1.0f32..1.0))
                    .collect();
                // Small: the scaled weights put ReLU and max-pool kinks within 1e-3 of
                // the point along a random direction (measured: h 1e-3 gives -0.217
                // where the limit is -0.116; 1e-4 gives -0.114).
                let h = 1e-4f32;
                let shifted = |sign: f32| {
                    let mut p = m.clone();
                    p.params
                        .iter_mut()
                        .zip(&v)
                        .for_each(|(w, d)| *w += sign * h * d);
                    loss_at(&p)
                };
                let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h as f64);
                let analytic: f64 = g.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
                assert!(
                    (fd - analytic).abs() <= 2e-2 * (1.0 + fd.abs()),
                    "distill {}, direction {dir}: finite difference {fd}, analytic {analytic}",
                    distill.is_some()
                );
            }
        }
        let mut g = vec![0f32; m.params.len()];
        let (mut g0, mut ce) = (vec![0f32; g.len()], vec![0f32; g.len()]);
        m.train_grad_trades(&x, &xa, &labels, 0.0, None, &mut g0, &mut rng)
            .unwrap();
        m.train_grad(&x, &labels, &Loss::CrossEntropy, &mut ce, &mut rng)
            .unwrap();
        assert!(g0
            .iter()
            .zip(&ce)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + b.abs())));
        let wrong = Tensor::zeros(&[2, 1, 28, 28]);
        assert!(m
            .train_grad_trades(&x, &wrong, &labels, beta, None, &mut g, &mut rng)
            .is_err());
    }

    #[test]
    fn wrong_input_shape_is_an_error() {
        let m = Model::new(Arch::LenetAdv(1), 0);
        assert!(m.infer(&Tensor::zeros(&[2, 1, 32, 32])).is_err());
        assert!(m.infer(&Tensor::zeros(&[2, 1, 28, 28])).is_ok());
    }

    #[test]
    fn tape_forward_equals_inference() {
        for arch in [Arch::LenetAdv(2), Arch::Lenet5, Arch::Mlp, Arch::Vgg16(1)] {
            let mut m = Model::new(arch, 3);
            // Non-trivial running statistics so eval-mode BN is exercised.
            for (i, v) in m.buffers.iter_mut().enumerate() {
                *v = 0.5 + (i % 7) as f32 * 0.1;
            }
            let [c, h, w] = arch.input_shape();
            let x = Tensor::from_fn(&[3, c, h, w], |i| ((i * 31) % 97) as f32 / 97.0);
            let logits = m.infer(&x).unwrap();
            let (out, g) = m.input_grad(&x, &[1, 2, 3], &Loss::CrossEntropy).unwrap();
            assert_eq!(logits.data(), &out.logits[..], "{arch}");
            assert_eq!(g.shape(), x.shape());
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rcc-model-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// A model with every value distinct from its init, so a mix-up of tensors shows.
    fn trained_looking(arch: Arch) -> Model {
        let mut m = Model::new(arch, 5);
        for (i, v) in m.buffers.iter_mut().enumerate() {
            *v = 0.25 + i as f32 * 1e-3;
        }
        m
    }

    #[test]
    fn save_then_load_is_bit_identical() {
        for arch in [Arch::Lenet5, Arch::Vgg16(1), Arch::Mlp] {
            let m = trained_looking(arch);
            let path = temp(&format!("{arch}.safetensors").replace(':', "_"));
            m.save(&path, &[("epochs", "3")]).unwrap();
            let back = Model::load(&path, None).unwrap();
            assert!(m
                .params
                .iter()
                .zip(&back.params)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(m
                .buffers
                .iter()
                .zip(&back.buffers)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(back.arch(), arch);
            let st = SafeTensors::read(&path).unwrap();
            assert_eq!(st.metadata["arch"], arch.to_string());
            assert_eq!(st.metadata["epochs"], "3");
        }
    }

    /// The header holds PyTorch's names, layouts and dtypes: what `load_state_dict` takes.
    #[test]
    fn file_has_pytorch_names_and_layouts() {
        let path = temp("layout.safetensors");
        Model::new(Arch::Lenet5, 0).save(&path, &[]).unwrap();
        let st = SafeTensors::read(&path).unwrap();
        let shapes: Vec<(&str, &[usize])> = st
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.shape.as_slice()))
            .collect();
        let want: Vec<(&str, &[usize])> = vec![
            ("conv1.bias", &[20]),
            ("conv1.weight", &[20, 1, 5, 5]),
            ("conv2.bias", &[50]),
            ("conv2.weight", &[50, 20, 5, 5]),
            ("fc1.bias", &[500]),
            ("fc1.weight", &[500, 800]),
            ("fc2.bias", &[10]),
            ("fc2.weight", &[10, 500]),
        ];
        assert_eq!(shapes, want);
        assert!(st
            .entries
            .iter()
            .all(|e| e.dtype() == crate::safetensors::Dtype::F32));
    }

    /// Writes `st` and returns the error message of loading it as `arch`.
    fn load_error(st: &SafeTensors, name: &str, arch: Option<Arch>) -> String {
        let path = temp(name);
        st.write(&path).unwrap();
        Model::load(&path, arch).unwrap_err().to_string()
    }

    fn without(st: &SafeTensors, name: &str) -> SafeTensors {
        let mut st = st.clone();
        st.entries.retain(|e| e.name != name);
        st
    }

    #[test]
    fn malformed_model_files_get_clear_errors() {
        let good = Model::new(Arch::LenetAdv(1), 0)
            .to_safetensors(&[])
            .unwrap();

        let e = load_error(&without(&good, "fc1.weight"), "missing.safetensors", None);
        assert!(
            e.contains("fc1.weight") && e.contains("missing.safetensors"),
            "{e}"
        );

        let mut wrong_shape = without(&good, "conv2.weight");
        wrong_shape
            .push_f32("conv2.weight", &[4, 2, 3, 3], vec![0.0; 72])
            .unwrap();
        let e = load_error(&wrong_shape, "shape.safetensors", None);
        assert!(
            e.contains("conv2.weight") && e.contains("[4, 2, 5, 5]") && e.contains("[4, 2, 3, 3]"),
            "{e}"
        );

        let mut wrong_dtype = without(&good, "fc2.bias");
        wrong_dtype
            .push_i64("fc2.bias", &[10], vec![0; 10])
            .unwrap();
        let e = load_error(&wrong_dtype, "dtype.safetensors", None);
        assert!(e.contains("fc2.bias") && e.contains("I64"), "{e}");

        let mut extra = good.clone();
        extra.push_f32("fc3.weight", &[2], vec![0.0; 2]).unwrap();
        let e = load_error(&extra, "extra.safetensors", None);
        assert!(
            e.contains("fc3.weight") && e.contains("no tensor of this name"),
            "{e}"
        );

        let mut no_arch = good.clone();
        no_arch.metadata.remove("arch");
        let e = load_error(&no_arch, "noarch.safetensors", None);
        assert!(e.contains("__metadata__.arch"), "{e}");

        let mut bad_arch = good.clone();
        bad_arch.metadata.insert("arch".into(), "resnet50".into());
        let e = load_error(&bad_arch, "badarch.safetensors", None);
        assert!(e.contains("resnet50"), "{e}");

        // The right file for another arch: every shape is named as wrong.
        let e = load_error(&good, "otherarch.safetensors", Some(Arch::LenetAdv(2)));
        assert!(
            e.contains("conv1.weight") && e.contains("lenet_adv:2"),
            "{e}"
        );
    }

    /// A PyTorch `state_dict` (no metadata, F64 values, BN `num_batches_tracked`
    /// counters) loads when the arch is named.
    #[test]
    fn loads_a_pytorch_state_dict() {
        let m = trained_looking(Arch::Vgg16(1));
        let mut st = SafeTensors::new();
        for (layout, values) in [(&m.net.params, &m.params), (&m.net.buffers, &m.buffers)] {
            for v in layout.views() {
                st.push_f64(
                    &v.name,
                    &v.shape,
                    values[v.range()].iter().map(|&x| x as f64).collect(),
                )
                .unwrap();
            }
        }
        st.push_i64("bn1.num_batches_tracked", &[], vec![7])
            .unwrap();
        let path = temp("state_dict.safetensors");
        st.write(&path).unwrap();
        assert!(Model::load(&path, None).is_err());
        let back = Model::load(&path, Some(Arch::Vgg16(1))).unwrap();
        assert_eq!((back.params, back.buffers), (m.params, m.buffers));
    }
}
