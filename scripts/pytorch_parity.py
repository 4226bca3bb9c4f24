"""Cross-framework check for `cargo xtask eval` (issue 4, must-show 3).

Trains a model in PyTorch (not in rcc), reports PyTorch's own clean test accuracy, and
saves the state_dict as safetensors under PyTorch's names. `cargo xtask eval --arch ARCH
--model FILE` must then report the same accuracy (to 0.01 points).

    python scripts/pytorch_parity.py --arch lenet_adv:1 --out /tmp/torch_lenet_adv1.safetensors
    cargo xtask eval --arch lenet_adv:1 --model /tmp/torch_lenet_adv1.safetensors

Needs torch, safetensors and numpy; uses the model definitions of
../shared/reference/make_reference.py and the MNIST files in datasets/.
"""
import argparse

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from torch_common import mnist, mr, root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="lenet_adv:1")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--data", default=str(root / "datasets"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = mr.build_model(a.arch)
    xtr, ytr = mnist("train", a.data)
    xte, yte = mnist("t10k", a.data)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(a.epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            b = perm[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(model(xtr[b]), ytr[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xte[i : i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])
    acc = (pred == yte).double().mean().item()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.out)
    print(f"pytorch {torch.__version__}: {a.arch} clean test accuracy {100 * acc:.2f}% ({int((pred == yte).sum())}/10000); saved {a.out}")


if __name__ == "__main__":
    main()
