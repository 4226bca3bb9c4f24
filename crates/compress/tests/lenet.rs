//! The prunable set of a real network: lenet_adv:4 (method.md section 4).

use rcc_compress::{keep_top_k, Budget, Mask, Prunable};
use rcc_nn::{Arch, Model};

#[test]
fn lenet_adv4_prunable_set_and_rate_16() {
    let mut model = Model::new(Arch::LenetAdv(4), 1);
    let prunable = Prunable::of(&model.net);
    let names: Vec<(&str, usize)> = prunable
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("conv1.weight", 8 * 25),
            ("conv2.weight", 16 * 8 * 25),
            ("fc1.weight", 256 * 784),
            ("fc2.weight", 10 * 256),
        ]
    );
    // 206,954 parameters minus the biases 8 + 16 + 256 + 10.
    assert_eq!(model.params.len(), 206_954);
    assert_eq!(prunable.total(), 206_954 - 290);
    assert_eq!(prunable.groups[1].row_len(), 200);
    assert_eq!(prunable.nnz(&model.params), prunable.total());

    let counts = Budget::PerLayer
        .keep_counts(&prunable, &model.params, 16.0)
        .unwrap();
    assert_eq!(counts.iter().sum::<usize>(), 12_917); // round(206664 / 16)
    let conv1_bias = model.net.params.find("conv1.bias").unwrap().range();
    let bias_before = model.params[conv1_bias.clone()].to_vec();
    for (g, &k) in prunable.groups.iter().zip(&counts) {
        keep_top_k(&mut model.params[g.range.clone()], k);
    }
    assert_eq!(prunable.nnz(&model.params), 12_917);
    assert!((prunable.rate(&model.params) - 206_664.0 / 12_917.0).abs() < 1e-9);
    let report = prunable.report(&model.params);
    assert_eq!(report.iter().map(|r| r.nnz).collect::<Vec<_>>(), counts);
    // conv1.bias is not pruned.
    assert_eq!(model.params[conv1_bias].to_vec(), bias_before);

    let mask = Mask::from_params(&model.params, &prunable).unwrap();
    assert_eq!((mask.nnz(), mask.len()), (12_917, 206_664));
    assert_eq!(mask.bytes(), 206_664usize.div_ceil(64) * 8);
}
