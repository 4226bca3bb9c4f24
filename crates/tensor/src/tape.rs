//! Reverse-mode autograd on a Wengert list.
//!
//! A [`Tape`] records each op as a node, in creation order, which is already a
//! topological order: [`Tape::backward`] walks the nodes once in reverse, with gradients
//! indexed by node id. No hash maps, no graph sort.
//!
//! Three modes, and the cheap ones are really cheap:
//! - [`Mode::Train`]: parameters require gradients; they accumulate straight into the
//!   model's one contiguous gradient buffer.
//! - [`Mode::InputGrad`]: parameters are constants. Ops skip the weight-gradient GEMMs and
//!   keep no state that only those need (conv's im2col buffers), and no parameter
//!   gradient buffer exists. This is what every attack step uses.
//! - Inference: no tape at all; call the ops' plain `forward` kernels (see `rcc_nn`).
//!
//! Parameters are not copied onto the tape: a parameter node is a view (offset, shape)
//! into the borrowed parameter buffer.

use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::{numel, Tensor};

/// A node of the tape (an index into its Wengert list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

impl Var {
    pub fn id(self) -> usize {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Gradients for the parameters (and for inputs marked as requiring them).
    Train,
    /// Gradients for inputs marked as requiring them only.
    InputGrad,
}

pub(crate) enum Value {
    Owned(Vec<f32>),
    /// A view into the tape's parameter buffer.
    Param {
        offset: usize,
    },
}

pub(crate) struct Node {
    /// The op's name ("input", "param", "conv2d", ...), for profiles and errors.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub value: Value,
    pub op: Op,
    pub requires_grad: bool,
}

/// What each op saved for its backward pass. Each op's backward lives in its own file.
pub(crate) enum Op {
    Leaf,
    Linear(ops::linear::Saved),
    Matmul(ops::matmul::Saved),
    Binary(ops::elementwise::Saved),
    Sum(ops::reduce::Saved),
    Reshape(ops::reshape::Saved),
    Relu(ops::relu::Saved),
    Conv2d(ops::conv2d::Saved),
    MaxPool2d(ops::max_pool2d::Saved),
    AvgPool2d(ops::avg_pool2d::Saved),
    BatchNorm2d(ops::batch_norm2d::Saved),
    LogSoftmax(ops::log_softmax::Saved),
    CrossEntropy(ops::cross_entropy::Saved),
    Distill(ops::distill::Saved),
    Trades(ops::trades::Saved),
    Dropout(ops::dropout::Saved),
}

pub struct Tape<'p> {
    params: &'p [f32],
    mode: Mode,
    nodes: Vec<Node>,
    /// When profiling: the time each node's forward took (time since the previous push).
    forward_times: Option<(std::time::Instant, Vec<std::time::Duration>)>,
}

/// One row of a per-op profile.
#[derive(Clone, Debug)]
pub struct OpTime {
    pub node: usize,
    pub op: &'static str,
    pub shape: Vec<usize>,
    pub forward: std::time::Duration,
    pub backward: std::time::Duration,
}

/// Read access to node values during backward (separate from the gradient store so an
/// op can read inputs while writing their gradients).
#[derive(Clone, Copy)]
pub(crate) struct Values<'a> {
    nodes: &'a [Node],
    params: &'a [f32],
}

impl<'a> Values<'a> {
    pub fn get(&self, v: Var) -> &'a [f32] {
        value_of(self.nodes, self.params, v)
    }
    pub fn shape(&self, v: Var) -> &'a [usize] {
        &self.nodes[v.0].shape
    }
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }
}

fn value_of<'a>(nodes: &'a [Node], params: &'a [f32], v: Var) -> &'a [f32] {
    let node = &nodes[v.0];
    match &node.value {
        Value::Owned(d) => d,
        Value::Param { offset } => &params[*offset..*offset + numel(&node.shape)],
    }
}

/// Gradient accumulators: one per node, allocated on first use; parameter nodes write
/// into the caller's contiguous gradient buffer instead.
pub(crate) struct GradStore<'a> {
    nodes: &'a [Node],
    grads: Vec<Option<Vec<f32>>>,
    param_grads: Option<&'a mut [f32]>,
}

impl GradStore<'_> {
    /// The accumulator for `v` (zeros on first use). Ops add into it.
    pub fn acc(&mut self, v: Var) -> &mut [f32] {
        let node = &self.nodes[v.0];
        let n = numel(&node.shape);
        match node.value {
            Value::Param { offset } => {
                let pg = self
                    .param_grads
                    .as_deref_mut()
                    .expect("checked in backward: Train mode has a gradient buffer");
                &mut pg[offset..offset + n]
            }
            Value::Owned(_) => self.grads[v.0].get_or_insert_with(|| crate::scratch::zeroed(n)),
        }
    }
}

/// The gradients of a backward pass for the non-parameter nodes that require them.
pub struct Grads {
    grads: Vec<Option<Vec<f32>>>,
    /// Per-node backward time, when the tape was profiling.
    backward_times: Vec<std::time::Duration>,
}

impl Grads {
    /// d(loss)/d(v), or `None` if `v` does not require a gradient or got none.
    pub fn get(&self, v: Var) -> Option<&[f32]> {
        self.grads.get(v.0).and_then(|g| g.as_deref())
    }
    /// Takes the gradient out (no copy).
    pub fn take(&mut self, v: Var) -> Option<Vec<f32>> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

/// Node values go back to the buffer pool for the next step's tape.
impl Drop for Tape<'_> {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            if let Value::Owned(v) = node.value {
                crate::scratch::give(v);
            }
        }
    }
}

impl<'p> Tape<'p> {
    /// A tape over the model's parameter buffer.
    pub fn new(params: &'p [f32], mode: Mode) -> Tape<'p> {
        Tape {
            params,
            mode,
            nodes: Vec::with_capacity(64),
            forward_times: None,
        }
    }

    /// Starts timing each op (forward here, backward in [`Tape::backward`]'s [`Grads`]).
    pub fn enable_profiling(&mut self) {
        self.forward_times = Some((std::time::Instant::now(), Vec::new()));
    }

    /// Per-node forward and backward times, when profiling was enabled before recording.
    pub fn profile(&self, grads: Option<&Grads>) -> Vec<OpTime> {
        let Some((_, fwd)) = &self.forward_times else {
            return vec![];
        };
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| OpTime {
                node: i,
                op: n.name,
                shape: n.shape.clone(),
                forward: fwd.get(i).copied().unwrap_or_default(),
                backward: grads
                    .and_then(|g| g.backward_times.get(i).copied())
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn lap(&mut self) {
        if let Some((last, times)) = &mut self.forward_times {
            let now = std::time::Instant::now();
            times.push(now - *last);
            *last = now;
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A data leaf. `requires_grad` asks for d(loss)/d(this) (an attack's input gradient).
    pub fn input(&mut self, t: Tensor, requires_grad: bool) -> Var {
        let shape = t.shape().to_vec();
        self.push("input", shape, t.into_data(), Op::Leaf, requires_grad)
    }

    /// Like [`Tape::input`], copying `t` into a pooled buffer (no fresh allocation).
    pub fn input_copy(&mut self, t: &Tensor, requires_grad: bool) -> Var {
        let data = crate::scratch::copy_of(t.data());
        self.push("input", t.shape().to_vec(), data, Op::Leaf, requires_grad)
    }

    /// A view of `numel(shape)` values of the parameter buffer starting at `offset`.
    /// It requires a gradient in [`Mode::Train`] only.
    pub fn param(&mut self, offset: usize, shape: &[usize]) -> Result<Var> {
        let end = offset.checked_add(numel(shape));
        if end.is_none_or(|e| e > self.params.len()) {
            return Err(Error::Invalid {
                op: "param",
                problem: format!(
                    "view at {offset} of shape {shape:?} exceeds the parameter buffer ({} values)",
                    self.params.len()
                ),
            });
        }
        self.lap();
        self.nodes.push(Node {
            name: "param",
            shape: shape.to_vec(),
            value: Value::Param { offset },
            op: Op::Leaf,
            requires_grad: self.mode == Mode::Train,
        });
        Ok(Var(self.nodes.len() - 1))
    }

    pub(crate) fn push(
        &mut self,
        name: &'static str,
        shape: Vec<usize>,
        data: Vec<f32>,
        op: Op,
        requires_grad: bool,
    ) -> Var {
        debug_assert_eq!(numel(&shape), data.len());
        self.lap();
        self.nodes.push(Node {
            name,
            shape,
            value: Value::Owned(data),
            op,
            requires_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// Records an op whose output requires a gradient iff one of `inputs` does; if none
    /// does, the saved state is dropped (nothing will ever read it).
    pub(crate) fn record(
        &mut self,
        name: &'static str,
        shape: Vec<usize>,
        data: Vec<f32>,
        inputs: &[Var],
        saved: impl FnOnce() -> Op,
    ) -> Var {
        let rg = inputs.iter().any(|&v| self.requires_grad(v));
        let op = if rg { saved() } else { Op::Leaf };
        self.push(name, shape, data, op, rg)
    }

    pub fn value(&self, v: Var) -> &[f32] {
        value_of(&self.nodes, self.params, v)
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        &self.nodes[v.0].shape
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// A copy of the node's value as a tensor.
    pub fn tensor(&self, v: Var) -> Tensor {
        Tensor::new(self.shape(v), self.value(v).to_vec()).expect("node shape matches its value")
    }

    /// The scalar value of a one-element node.
    pub fn scalar(&self, v: Var) -> f32 {
        self.value(v)[0]
    }

    /// Walks the tape once in reverse from the scalar `loss` (seeded with 1).
    ///
    /// In [`Mode::Train`] parameter gradients are *added* to `param_grads` (the model's
    /// contiguous gradient buffer, zeroed by the caller between steps); in
    /// [`Mode::InputGrad`] pass `None`.
    pub fn backward(&self, loss: Var, param_grads: Option<&mut [f32]>) -> Result<Grads> {
        if loss.0 < self.nodes.len() && numel(self.shape(loss)) != 1 {
            return Err(Error::Backward(format!(
                "the loss must be a scalar, got shape {:?}",
                self.shape(loss)
            )));
        }
        self.backward_seeded(loss, &[1.0], param_grads)
    }

    /// Like [`Tape::backward`] from any node `out`, seeded with d(objective)/d(out) =
    /// `seed` (the objective `sum(out * seed)`, as in the reference op cases).
    pub fn backward_seeded(
        &self,
        out: Var,
        seed: &[f32],
        param_grads: Option<&mut [f32]>,
    ) -> Result<Grads> {
        let loss = out;
        if loss.0 >= self.nodes.len() || numel(self.shape(loss)) != seed.len() {
            return Err(Error::Backward(format!(
                "seed of {} values for node {} of shape {:?}",
                seed.len(),
                loss.0,
                self.nodes.get(loss.0).map(|n| &n.shape)
            )));
        }
        match (&param_grads, self.mode) {
            (None, Mode::Train) => {
                return Err(Error::Backward(
                    "Train mode needs a parameter gradient buffer".into(),
                ))
            }
            (Some(g), Mode::Train) if g.len() != self.params.len() => {
                return Err(Error::Backward(format!(
                    "gradient buffer has {} values, parameters have {}",
                    g.len(),
                    self.params.len()
                )))
            }
            _ => {}
        }
        let vals = Values {
            nodes: &self.nodes,
            params: self.params,
        };
        let mut store = GradStore {
            nodes: &self.nodes,
            grads: (0..self.nodes.len()).map(|_| None).collect(),
            param_grads: if self.mode == Mode::Train {
                param_grads
            } else {
                None
            },
        };
        if !self.nodes[loss.0].requires_grad {
            return Ok(Grads {
                grads: store.grads,
                backward_times: vec![],
            });
        }
        store.grads[loss.0] = Some(seed.to_vec());
        let profiling = self.forward_times.is_some();
        let mut backward_times =
            vec![std::time::Duration::ZERO; if profiling { self.nodes.len() } else { 0 }];
        for id in (0..=loss.0).rev() {
            let start = profiling.then(std::time::Instant::now);
            let node = &self.nodes[id];
            if !node.requires_grad || matches!(node.op, Op::Leaf) {
                continue;
            }
            // The output gradient is taken out (an op node's gradient is not needed
            // after its own backward), so the op can write its inputs' accumulators.
            let Some(dy) = store.grads[id].take() else {
                continue;
            };
            let out = Var(id);
            match &node.op {
                Op::Leaf => {}
                Op::Linear(s) => ops::linear::backward(s, out, &dy, vals, &mut store),
                Op::Matmul(s) => ops::matmul::backward(s, out, &dy, vals, &mut store),
                Op::Binary(s) => ops::elementwise::backward(s, out, &dy, vals, &mut store),
                Op::Sum(s) => ops::reduce::backward(s, out, &dy, vals, &mut store),
                Op::Reshape(s) => ops::reshape::backward(s, out, &dy, vals, &mut store),
                Op::Relu(s) => ops::relu::backward(s, out, &dy, vals, &mut store),
                Op::Conv2d(s) => ops::conv2d::backward_op(s, out, &dy, vals, &mut store),
                Op::MaxPool2d(s) => ops::max_pool2d::backward(s, out, &dy, vals, &mut store),
                Op::AvgPool2d(s) => ops::avg_pool2d::backward(s, out, &dy, vals, &mut store),
                Op::BatchNorm2d(s) => ops::batch_norm2d::backward(s, out, &dy, vals, &mut store),
                Op::LogSoftmax(s) => ops::log_softmax::backward(s, out, &dy, vals, &mut store),
                Op::CrossEntropy(s) => ops::cross_entropy::backward(s, out, &dy, vals, &mut store),
                Op::Distill(s) => ops::distill::backward(s, out, &dy, vals, &mut store),
                Op::Trades(s) => ops::trades::backward(s, out, &dy, vals, &mut store),
                Op::Dropout(s) => ops::dropout::backward(s, out, &dy, vals, &mut store),
            }
            crate::scratch::give(dy);
            if let Some(start) = start {
                backward_times[id] = start.elapsed();
            }
        }
        // Keep only leaf gradients that were asked for: intermediate ones were consumed.
        Ok(Grads {
            grads: store.grads,
            backward_times,
        })
    }
}
