//! What a sparse network *is*, independent of how it runs: the layer list with CSR
//! weights, as converted from a dense [`Model`] or read from a file. The kernels (sparse or
//! dense per layer) are chosen when a [`crate::SparseModel`] is built from a spec, so one
//! file serves every machine.

use crate::csr::Csr;
use crate::error::{shape, Error, Result};
use rcc_nn::layers::Layer;
use rcc_nn::Model;

/// Bound on any activation (values per sample) and on any layer's weight count: keeps a
/// crafted file from sizing huge buffers (2^28 f32 = 1 GiB).
pub const MAX_LEN: usize = 1 << 28;

/// One layer of a sparse network.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// Convolution, weights `[O, C*KH*KW]` in CSR (row = output channel, column =
    /// `(c*KH + ki)*KW + kj`, PyTorch's `[O, C, KH, KW]` flattened), bias `[O]` (zeros when
    /// the dense layer had none), optional fused ReLU.
    Conv {
        w: Csr,
        in_channels: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        bias: Vec<f32>,
        relu: bool,
    },
    /// Linear layer, weights `[out, in]` in CSR, bias `[out]`, optional fused ReLU.
    Linear {
        w: Csr,
        bias: Vec<f32>,
        relu: bool,
    },
    /// Max pooling, no padding, floor mode.
    MaxPool {
        k: usize,
        s: usize,
    },
    /// Average pooling, no padding, floor mode.
    AvgPool {
        k: usize,
        s: usize,
    },
    Relu,
    /// `[C, H, W]` -> `[C*H*W]` (no data movement).
    Flatten,
}

impl LayerSpec {
    /// A short name for messages and file metadata.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::MaxPool { .. } => "max_pool",
            LayerSpec::AvgPool { .. } => "avg_pool",
            LayerSpec::Relu => "relu",
            LayerSpec::Flatten => "flatten",
        }
    }

    /// The CSR weights of a conv or linear layer.
    pub fn weights(&self) -> Option<&Csr> {
        match self {
            LayerSpec::Conv { w, .. } | LayerSpec::Linear { w, .. } => Some(w),
            _ => None,
        }
    }

    /// The output shape for input shape `dims` (one sample), checking every constraint
    /// the kernels rely on. `index` names the layer in errors.
    pub fn out_shape(&self, index: usize, dims: &[usize]) -> Result<Vec<usize>> {
        let what = |s: &str| format!("layer {index} ({}): {s}", self.kind());
        let out = match *self {
            LayerSpec::Conv {
                ref w,
                in_channels: c,
                kh,
                kw,
                stride,
                pad,
                ref bias,
                ..
            } => {
                let &[ci, h, wd] = dims else {
                    return shape(what("input"), "[C, H, W]", format!("{dims:?}"));
                };
                if c != ci {
                    return shape(what("input channels"), c, ci);
                }
                if kh == 0 || kw == 0 || stride == 0 {
                    return shape(
                        what("kernel and stride"),
                        "at least 1",
                        format!("{kh}x{kw} stride {stride}"),
                    );
                }
                if c.checked_mul(kh).and_then(|v| v.checked_mul(kw)) != Some(w.cols()) {
                    return shape(
                        what("weight columns (C*KH*KW)"),
                        format!("{c}*{kh}*{kw}"),
                        w.cols(),
                    );
                }
                if bias.len() != w.rows() {
                    return shape(what("bias length"), w.rows(), bias.len());
                }
                let (hp, wp) = (
                    h.saturating_add(2 * pad.min(MAX_LEN)),
                    wd.saturating_add(2 * pad.min(MAX_LEN)),
                );
                if hp < kh || wp < kw {
                    return shape(
                        what("padded input"),
                        format!("at least {kh}x{kw}"),
                        format!("{hp}x{wp}"),
                    );
                }
                if c.saturating_mul(hp).saturating_mul(wp) > MAX_LEN {
                    return shape(
                        what("padded input size"),
                        format!("at most {MAX_LEN} values"),
                        format!("{c}x{hp}x{wp}"),
                    );
                }
                vec![w.rows(), (hp - kh) / stride + 1, (wp - kw) / stride + 1]
            }
            LayerSpec::Linear {
                ref w, ref bias, ..
            } => {
                let fin: usize = dims.iter().product();
                if dims.len() != 1 || w.cols() != fin {
                    return shape(
                        what("input"),
                        format!("a flat vector of {}", w.cols()),
                        format!("{dims:?}"),
                    );
                }
                if bias.len() != w.rows() {
                    return shape(what("bias length"), w.rows(), bias.len());
                }
                vec![w.rows()]
            }
            LayerSpec::MaxPool { k, s } | LayerSpec::AvgPool { k, s } => match *dims {
                [c, h, wd] if k > 0 && s > 0 && h >= k && wd >= k => {
                    vec![c, (h - k) / s + 1, (wd - k) / s + 1]
                }
                _ => {
                    return shape(
                        what("input"),
                        format!("[C, H, W] of at least {k}x{k}, kernel and stride at least 1"),
                        format!("{dims:?}, kernel {k}, stride {s}"),
                    )
                }
            },
            LayerSpec::Relu => dims.to_vec(),
            LayerSpec::Flatten => vec![dims.iter().product()],
        };
        let len = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match len {
            Some(l) if l > 0 && l <= MAX_LEN => Ok(out),
            _ => shape(
                what("output size"),
                format!("between 1 and {MAX_LEN} values"),
                format!("{out:?}"),
            ),
        }
    }
}

/// A whole sparse network: where it came from, its input shape and its layers.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The dense architecture it was converted from (e.g. `lenet5`), for reports.
    pub arch: String,
    /// One sample's input `[C, H, W]`.
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// The shape after each layer (`shapes[0]` is the input), validating the chain.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        let input = self.input.to_vec();
        if input.contains(&0) || input.iter().product::<usize>() > MAX_LEN {
            return shape(
                "sparse model input",
                format!("[C, H, W], each at least 1, at most {MAX_LEN} values"),
                format!("{input:?}"),
            );
        }
        let mut shapes = vec![input];
        for (i, l) in self.layers.iter().enumerate() {
            let next = l.out_shape(i, shapes.last().unwrap())?;
            shapes.push(next);
        }
        if shapes.last().unwrap().len() != 1 {
            return shape(
                "sparse model output",
                "flat logits [K]",
                format!("{:?}", shapes.last().unwrap()),
            );
        }
        Ok(shapes)
    }

    /// Converts a sequential model (conv, linear, ReLU, max/avg pool, flatten, dropout,
    /// batch norm). Each ReLU right after a conv or linear layer is fused into it; dropout
    /// is dropped (inference); an eval-mode batch norm right after a conv is folded into
    /// it: `w' = w * g`, `b' = (b - mean) * g + beta` with `g = gamma / sqrt(var + eps)`,
    /// which keeps every zero weight zero.
    pub fn from_model(model: &Model) -> Result<ModelSpec> {
        let net = &model.net;
        let param = |id| &model.params[net.params.view(id).range()];
        let buffer = |id| &model.buffers[net.buffers.view(id).range()];
        let mut layers: Vec<LayerSpec> = vec![];
        let mut dims = net.arch.input_shape().to_vec();
        for (i, layer) in net.layers.iter().enumerate() {
            let spec = match *layer {
                Layer::Conv2d {
                    weight,
                    bias,
                    stride,
                    padding,
                } => {
                    let ws = &net.params.view(weight).shape;
                    let &[o, c, kh, kw] = &ws[..] else {
                        return shape(
                            format!("layer {i} (conv) weight"),
                            "[O, C, KH, KW]",
                            format!("{ws:?}"),
                        );
                    };
                    let mut w = param(weight).to_vec();
                    let mut b = bias.map_or(vec![0.0; o], |b| param(b).to_vec());
                    if let Some(Layer::BatchNorm2d {
                        weight: gamma,
                        bias: beta,
                        running_mean,
                        running_var,
                        eps,
                        ..
                    }) = net.layers.get(i + 1)
                    {
                        let (gamma, beta) = (param(*gamma), param(*beta));
                        let (mean, var) = (buffer(*running_mean), buffer(*running_var));
                        let k = c * kh * kw;
                        for oc in 0..o {
                            // The engine's eval batch norm: invstd in f64, rounded to f32.
                            let invstd = (1.0 / (var[oc] as f64 + *eps as f64).sqrt()) as f32;
                            let g = gamma[oc] * invstd;
                            w[oc * k..][..k].iter_mut().for_each(|v| *v *= g);
                            b[oc] = (b[oc] - mean[oc]) * g + beta[oc];
                        }
                    }
                    LayerSpec::Conv {
                        w: Csr::from_dense(&w, o, c * kh * kw)?,
                        in_channels: c,
                        kh,
                        kw,
                        stride,
                        pad: padding,
                        bias: b,
                        relu: false,
                    }
                }
                Layer::Linear { weight, bias } => {
                    let ws = &net.params.view(weight).shape;
                    let &[o, fin] = &ws[..] else {
                        return shape(
                            format!("layer {i} (linear) weight"),
                            "[out, in]",
                            format!("{ws:?}"),
                        );
                    };
                    if dims.len() != 1 {
                        layers.push(LayerSpec::Flatten);
                        dims = vec![dims.iter().product()];
                    }
                    LayerSpec::Linear {
                        w: Csr::from_dense(param(weight), o, fin)?,
                        bias: bias.map_or(vec![0.0; o], |b| param(b).to_vec()),
                        relu: false,
                    }
                }
                Layer::BatchNorm2d { .. } => {
                    // Folded into the conv right before it (see the Conv2d arm).
                    if i > 0 && matches!(net.layers.get(i - 1), Some(Layer::Conv2d { .. })) {
                        continue; // folded above
                    }
                    return Err(Error::Unsupported(format!(
                        "layer {i} of {}: a batch norm that does not directly follow a conv",
                        net.arch
                    )));
                }
                Layer::Relu => match layers.last_mut() {
                    Some(LayerSpec::Conv { relu, .. } | LayerSpec::Linear { relu, .. })
                        if !*relu =>
                    {
                        *relu = true;
                        continue;
                    }
                    _ => LayerSpec::Relu,
                },
                Layer::MaxPool2d { kernel, stride } => LayerSpec::MaxPool {
                    k: kernel,
                    s: stride,
                },
                Layer::AvgPool2d { kernel, stride } => LayerSpec::AvgPool {
                    k: kernel,
                    s: stride,
                },
                Layer::Flatten => LayerSpec::Flatten,
                Layer::Dropout { .. } => continue,
            };
            dims = spec.out_shape(layers.len(), &dims)?;
            layers.push(spec);
        }
        let spec = ModelSpec {
            arch: net.arch.to_string(),
            input: net.arch.input_shape(),
            layers,
        };
        spec.shapes()?;
        Ok(spec)
    }

    /// Prunable weights (conv and linear) and how many of them are non-zero.
    pub fn weight_counts(&self) -> (usize, usize) {
        self.layers
            .iter()
            .filter_map(LayerSpec::weights)
            .fold((0, 0), |(t, n), w| (t + w.rows() * w.cols(), n + w.nnz()))
    }
}
