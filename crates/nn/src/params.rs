//! One contiguous buffer for all of a model's values, with named views (llm.c style):
//! the optimiser, the proximal step, pruning masks and file I/O are loops over one slice.

/// A named tensor inside a [`ParamLayout`]'s buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// PyTorch's parameter name, e.g. `conv1.weight`.
    pub name: String,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl View {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Handle of a view inside its layout.
pub type ViewId = usize;

/// The views of one buffer, in PyTorch's `named_parameters()` order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamLayout {
    views: Vec<View>,
    len: usize,
}

impl ParamLayout {
    /// Appends a view at the end of the buffer.
    pub fn push(&mut self, name: &str, shape: &[usize]) -> ViewId {
        let v = View {
            name: name.to_string(),
            offset: self.len,
            shape: shape.to_vec(),
        };
        self.len += v.len();
        self.views.push(v);
        self.views.len() - 1
    }
    pub fn views(&self) -> &[View] {
        &self.views
    }
    pub fn view(&self, id: ViewId) -> &View {
        &self.views[id]
    }
    pub fn find(&self, name: &str) -> Option<&View> {
        self.views.iter().find(|v| v.name == name)
    }
    /// Total number of values.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
