//! The layers: Conv2d, Linear, MaxPool2d, AvgPool2d, BatchNorm2d, ReLU, Flatten, Dropout.
//!
//! A layer holds no data: its parameters are views ([`ViewId`]) into the model's one
//! parameter buffer, its batch-norm running statistics views into the buffer of
//! non-trainable values. Each layer runs two ways: on a [`Tape`] (training and attack
//! steps) and as a plain forward kernel with no tape ([`Layer::infer`]).

use crate::error::Result;
use crate::params::{ParamLayout, ViewId};
use rand::RngCore;
use rcc_tensor::ops::{avg_pool2d, batch_norm2d, conv2d, linear, max_pool2d, relu};
use rcc_tensor::{BnMode, Tape, Tensor, Var};

#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv2d {
        weight: ViewId,
        bias: Option<ViewId>,
        stride: usize,
        padding: usize,
    },
    Linear {
        weight: ViewId,
        bias: Option<ViewId>,
    },
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    AvgPool2d {
        kernel: usize,
        stride: usize,
    },
    BatchNorm2d {
        weight: ViewId,
        bias: ViewId,
        /// Views into the buffer of running statistics.
        running_mean: ViewId,
        running_var: ViewId,
        eps: f32,
        momentum: f32,
    },
    Relu,
    Flatten,
    Dropout {
        p: f32,
    },
}

/// How a forward pass on a tape treats batch norm and dropout.
pub enum Pass<'a> {
    /// Running statistics, dropout off (evaluation, attacks on a trained model).
    Eval { buffers: &'a [f32] },
    /// Batch statistics whose running update is written into `buffers`; dropout masks
    /// drawn from `rng`.
    Train {
        buffers: &'a mut [f32],
        rng: &'a mut dyn RngCore,
    },
}

impl Layer {
    /// Whether this layer can absorb a following ReLU into its own kernel.
    pub fn fuses_relu(&self) -> bool {
        matches!(self, Layer::Conv2d { .. } | Layer::Linear { .. })
    }

    /// Records this layer on the tape; `relu` applies a fused ReLU (only for layers
    /// where [`Layer::fuses_relu`]).
    pub fn forward(
        &self,
        t: &mut Tape,
        x: Var,
        relu: bool,
        params: &ParamLayout,
        buffers: &ParamLayout,
        pass: &mut Pass,
    ) -> Result<Var> {
        let p = |t: &mut Tape, id: ViewId| t.param(params.view(id).offset, &params.view(id).shape);
        Ok(match *self {
            Layer::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => {
                let w = p(t, weight)?;
                let b = bias.map(|b| p(t, b)).transpose()?;
                t.conv2d_act(x, w, b, stride, padding, relu)?
            }
            Layer::Linear { weight, bias } => {
                let w = p(t, weight)?;
                let b = bias.map(|b| p(t, b)).transpose()?;
                t.linear_act(x, w, b, relu)?
            }
            Layer::MaxPool2d { kernel, stride } => t.max_pool2d(x, kernel, stride)?,
            Layer::AvgPool2d { kernel, stride } => t.avg_pool2d(x, kernel, stride)?,
            Layer::BatchNorm2d {
                weight,
                bias,
                running_mean,
                running_var,
                eps,
                momentum,
            } => {
                let (g, b) = (p(t, weight)?, p(t, bias)?);
                let (rm, rv) = (
                    buffers.view(running_mean).range(),
                    buffers.view(running_var).range(),
                );
                match pass {
                    Pass::Train {
                        buffers: running, ..
                    } => {
                        let (y, stats) = t.batch_norm2d(x, g, b, BnMode::Train, eps)?;
                        let stats = stats.expect("train mode returns batch statistics");
                        // PyTorch's update: running = (1 - momentum) * running + momentum * batch.
                        for (i, (&m, &v)) in stats.mean.iter().zip(&stats.var_unbiased).enumerate()
                        {
                            let (a, b) = (rm.start + i, rv.start + i);
                            running[a] = (1.0 - momentum) * running[a] + momentum * m;
                            running[b] = (1.0 - momentum) * running[b] + momentum * v;
                        }
                        y
                    }
                    Pass::Eval { buffers: bufs } => {
                        let mode = BnMode::Eval {
                            mean: &bufs[rm],
                            var: &bufs[rv],
                        };
                        t.batch_norm2d(x, g, b, mode, eps)?.0
                    }
                }
            }
            Layer::Relu => t.relu(x)?,
            Layer::Flatten => t.flatten(x)?,
            Layer::Dropout { p } => match pass {
                Pass::Train { rng, .. } => t.dropout(x, p, *rng)?,
                Pass::Eval { .. } => x,
            },
        })
    }

    /// Inference: the plain forward kernels, no tape, batch norm on running statistics,
    /// dropout off.
    pub fn infer(
        &self,
        x: Tensor,
        relu: bool,
        params: &ParamLayout,
        values: &[f32],
        buffers: &ParamLayout,
        bufs: &[f32],
    ) -> Result<Tensor> {
        let val = |id: ViewId| &values[params.view(id).range()];
        let shape = x.shape().to_vec();
        Ok(match *self {
            Layer::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => {
                let g =
                    conv2d::Conv2dGeom::new(&shape, &params.view(weight).shape, stride, padding)?;
                let y = conv2d::forward(&g, x.data(), val(weight), bias.map(val), relu);
                Tensor::new(&g.out_shape(), y)?
            }
            Layer::Linear { weight, bias } => {
                let ws = &params.view(weight).shape;
                if shape.len() != 2 || shape[1] != ws[1] {
                    return Err(rcc_tensor::Error::Shape {
                        op: "linear",
                        expected: format!("x [N, {}]", ws[1]),
                        got: format!("{shape:?}"),
                    }
                    .into());
                }
                let y = linear::forward(
                    x.data(),
                    val(weight),
                    bias.map(val),
                    relu,
                    shape[0],
                    ws[1],
                    ws[0],
                );
                Tensor::new(&[shape[0], ws[0]], y)?
            }
            Layer::MaxPool2d { kernel, stride } => {
                let g = max_pool2d::PoolGeom::new("max_pool2d", &shape, kernel, stride)?;
                Tensor::new(&g.out_shape(&shape), max_pool2d::forward(&g, x.data()).0)?
            }
            Layer::AvgPool2d { kernel, stride } => {
                let g = max_pool2d::PoolGeom::new("avg_pool2d", &shape, kernel, stride)?;
                Tensor::new(&g.out_shape(&shape), avg_pool2d::forward(&g, x.data()))?
            }
            Layer::BatchNorm2d {
                weight,
                bias,
                running_mean,
                running_var,
                eps,
                ..
            } => {
                let mode = BnMode::Eval {
                    mean: &bufs[buffers.view(running_mean).range()],
                    var: &bufs[buffers.view(running_var).range()],
                };
                let (y, ..) =
                    batch_norm2d::forward(x.data(), &shape, val(weight), val(bias), mode, eps)?;
                Tensor::new(&shape, y)?
            }
            Layer::Relu => {
                let mut x = x;
                relu::forward_inplace(x.data_mut());
                x
            }
            Layer::Flatten => {
                let n = shape.first().copied().unwrap_or(1);
                let rest = shape.iter().skip(1).product();
                x.reshape(&[n, rest])?
            }
            Layer::Dropout { .. } => x,
        })
    }
}
