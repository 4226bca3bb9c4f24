pub use rcc_nn as nn;
pub use rcc_tensor as tensor;
