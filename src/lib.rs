//! rcc: robust CNN compression. Re-exports the workspace crates (and owns the benches).
pub use rcc_attack as attack;
pub use rcc_compress as compress;
pub use rcc_data as data;
pub use rcc_nn as nn;
pub use rcc_sparse as sparse;
pub use rcc_tensor as tensor;
