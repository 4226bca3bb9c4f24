"""PyTorch reference for rcc's TRADES path (Zhang et al., ICML 2019).

Writes crates/attack/tests/data/trades_reference.safetensors, which
crates/attack/tests/trades_reference.rs checks rcc against:

- the inner maximisation (`rcc_attack::trades_pgd_from`) against the loop of the
  official `trades_loss` (yaodongyu/TRADES, trades.py):
      x_adv = x + 0.001 * randn
      repeat STEPS: g = grad_{x_adv} KLDivLoss(sum)(log_softmax(f(x_adv)), softmax(f(x)))
                    x_adv = clamp(min(max(x_adv + STEP * sign(g), x - eps), x + eps), 0, 1)
- the loss and its parameter gradients (`Model::train_grad_trades`, the tape's
  `trades_loss`) against the official
      CE(f(x), y) + beta / N * KLDivLoss(sum)(log_softmax(f(x_adv)), softmax(f(x)))
  differentiated through every pass of f (the clean pass inside the KL included).

    python scripts/trades_reference.py            # (re)writes the file, prints a summary
    python scripts/trades_reference.py --verify   # recomputes and compares with the file

Needs torch, numpy and safetensors, the model definitions of
../shared/reference/make_reference.py and the MNIST files in datasets/mnist.

What the file holds (float32 unless noted; names of parameters are PyTorch's):
- conv1.weight ... fc2.bias: a lenet_adv:1 trained for 200 SGD steps on MNIST (so its
  predictions are far from uniform), seed 0;
- input [4,1,28,28]: the first 4 MNIST test images; labels [4] (I64);
- start_raw: input + 0.001 * torch.randn (f32), the official start, *not* clamped.
  rcc's `trades_pgd` projects its start onto the eps-ball and [0, 1]
  (`clamp(clamp(v, x - eps, x + eps), 0, 1)`, in f32); the official code does not, so its
  first gradient sees pixels up to ~0.003 outside [0, 1]. The trajectories below start from
  the projected start, i.e. rcc's semantics; the metadata says how much the official
  unprojected start changes the end point (`raw_vs_projected_start_*`);
- adv.s10: 10 steps of 0.075, eps 0.3 (the setting `trades:0.3:10:0.075:B`);
  adv.s5: 5 steps of 0.01, eps 0.3; both from the projected start. The positions are
  updated in float32 exactly as rcc does (f32 step, f32 clamps); the gradient whose sign is
  taken is computed in float64 from the float32 point (the most accurate sign);
- loss.b1, loss.b6 (F64 scalars): the TRADES loss at beta 1 and 6 on (input, adv.s10),
  computed in float64 from the float32 inputs;
- grad.b6.<param>: its gradient at beta 6 for every parameter, rounded to float32;
  grad.b1.<param>: at beta 1 for every parameter except fc1.weight (left out to keep the
  file small; beta 6 checks it, and beta 1 separates the CE part from the KL part).
"""
import argparse, copy, json, pathlib, sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from torch_common import mnist, mr, root

ARCH = "lenet_adv:1"
SEED = 0
N = 4
EPS = 0.3
TRAJECTORIES = {"s10": (10, 0.075), "s5": (5, 0.01)}
BETAS = {"b1": 1.0, "b6": 6.0}
B1_LEFT_OUT = {"fc1.weight"}
OUT = root / "crates/attack/tests/data/trades_reference.safetensors"
F32 = torch.float32


def trained_model(data):
    """lenet_adv:1, PyTorch default init from seed 0, then 200 SGD steps (batch 64)."""
    torch.manual_seed(SEED)
    model = mr.build_model(ARCH)
    xtr, ytr = mnist("train", data)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    perm = torch.randperm(len(xtr))
    model.train()
    for s in range(200):
        b = perm[s * 64:(s + 1) * 64]
        opt.zero_grad()
        F.cross_entropy(model(xtr[b]), ytr[b]).backward()
        opt.step()
    model.eval()
    return model


def in_dtype(model, dtype):
    m = copy.deepcopy(model).to(dtype)
    m.eval()  # the official attack runs in eval mode; lenet_adv has no BN or dropout anyway
    return m


def kl_sum(model, x_adv, x):
    """nn.KLDivLoss(size_average=False)(log_softmax(f(x_adv)), softmax(f(x)))."""
    return F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1), reduction="sum")


def project(v, x, eps):
    """rcc's Norm::Linf.project, in float32: clamp(clamp(v, x - eps, x + eps), 0, 1)."""
    e = torch.tensor(eps, dtype=F32)
    return torch.clamp(torch.min(torch.max(v, x - e), x + e), 0.0, 1.0)


def attack(model, x, start, eps, steps, step, grad_dtype):
    """The official loop from `start`; positions in float32, the gradient in grad_dtype."""
    m = in_dtype(model, grad_dtype)
    step32 = torch.tensor(step, dtype=F32)
    x_adv = start.clone()
    for _ in range(steps):
        xa = x_adv.to(grad_dtype).requires_grad_()
        g = torch.autograd.grad(kl_sum(m, xa, x.to(grad_dtype)), [xa])[0]
        x_adv = x_adv + step32 * torch.sign(g).to(F32)
        x_adv = project(x_adv, x, eps)
    return x_adv


def trades_loss(model, x, y, x_adv, beta, dtype, detach_target=False):
    """The official loss (trades.py, after the attack), and its parameter gradients."""
    m = in_dtype(model, dtype)
    x, x_adv = x.to(dtype), x_adv.to(dtype)
    logits = m(x)
    loss_natural = F.cross_entropy(logits, y)
    target = F.softmax(m(x), dim=1)
    if detach_target:
        target = target.detach()
    loss_robust = (1.0 / len(x)) * F.kl_div(F.log_softmax(m(x_adv), dim=1), target, reduction="sum")
    loss = loss_natural + beta * loss_robust
    names = [n for n, _ in m.named_parameters()]
    grads = torch.autograd.grad(loss, list(m.parameters()))
    return loss.detach(), dict(zip(names, grads))


def rel(a, b):
    """max |a - b| / max |b| (the reference README's norm-wise relative error)."""
    a, b = a.double(), b.double()
    s = b.abs().max().item()
    d = (a - b).abs().max().item()
    return d / s if s > 0 else d


def build(data):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model = trained_model(data)
    xte, yte = mnist("t10k", data)
    x, y = xte[:N].clone(), yte[:N].clone()
    gen = torch.Generator().manual_seed(SEED + 1)
    noise = torch.randn(x.shape, generator=gen, dtype=F32)
    start_raw = x + 0.001 * noise
    start = project(start_raw, x, EPS)

    tensors = {k: v.detach().to(F32).contiguous() for k, v in model.state_dict().items()}
    tensors["input"], tensors["labels"], tensors["start_raw"] = x, y, start_raw
    meta = {
        "format": "rcc-trades-reference-v1",
        "arch": ARCH,
        "seed": str(SEED),
        "batch": str(N),
        "eps": str(EPS),
        "torch_version": torch.__version__,
        "description": "TRADES (yaodongyu/TRADES trades.py) attack trajectories, loss and "
                       "parameter gradients; see scripts/trades_reference.py",
    }
    with torch.no_grad():
        meta["clean_pred"] = json.dumps(model(x).argmax(1).tolist())
        meta["labels"] = json.dumps(y.tolist())
    for name, (steps, step) in TRAJECTORIES.items():
        adv = attack(model, x, start, EPS, steps, step, torch.float64)
        tensors[f"adv.{name}"] = adv
        meta[f"adv.{name}"] = json.dumps({"steps": steps, "step": step})
        # Noise floor: the same loop with the gradient in float32 (as rcc and PyTorch f32).
        adv32 = attack(model, x, start, EPS, steps, step, F32)
        meta[f"f32_grad_vs_f64_grad_{name}_elements_differing"] = str(int((adv32 != adv).sum()))
        # The official unprojected start, float64 gradients.
        adv_raw = attack(model, x, start_raw, EPS, steps, step, torch.float64)
        meta[f"raw_vs_projected_start_{name}_elements_differing"] = str(int((adv_raw != adv).sum()))
        meta[f"raw_vs_projected_start_{name}_max_abs_diff"] = f"{(adv_raw - adv).abs().max().item():.3g}"
        with torch.no_grad():
            m64 = in_dtype(model, torch.float64)
            meta[f"kl_sum_start_{name}"] = f"{kl_sum(m64, start.double(), x.double()).item():.6g}"
            meta[f"kl_sum_end_{name}"] = f"{kl_sum(m64, adv.double(), x.double()).item():.6g}"
    x_adv = tensors["adv.s10"]
    for bname, beta in BETAS.items():
        loss64, g64 = trades_loss(model, x, y, x_adv, beta, torch.float64)
        loss32, g32 = trades_loss(model, x, y, x_adv, beta, F32)
        _, g_det = trades_loss(model, x, y, x_adv, beta, torch.float64, detach_target=True)
        tensors[f"loss.{bname}"] = loss64.reshape(())
        for n, g in g64.items():
            if bname == "b1" and n in B1_LEFT_OUT:
                continue
            tensors[f"grad.{bname}.{n}"] = g.to(F32).contiguous()
        meta[f"loss_{bname}_rel_err_f32_vs_f64"] = f"{abs(loss32.item() - loss64.item()) / abs(loss64.item()):.3g}"
        meta[f"grad_{bname}_rel_err_f32_vs_f64"] = json.dumps({n: float(f"{rel(g32[n], g64[n]):.3g}") for n in g64})
        meta[f"grad_{bname}_rel_diff_target_detached"] = json.dumps({n: float(f"{rel(g_det[n], g64[n]):.3g}") for n in g64})
    return tensors, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(root / "datasets"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--verify", action="store_true", help="recompute and compare with --out, write nothing")
    a = ap.parse_args()
    tensors, meta = build(a.data)
    out = pathlib.Path(a.out)
    if a.verify:
        stored = load_file(str(out))
        bad = [k for k in tensors if k not in stored or not torch.equal(stored[k], tensors[k])]
        extra = [k for k in stored if k not in tensors]
        print(f"{out}: {len(tensors)} tensors recomputed, {len(bad)} differ {bad}, {len(extra)} unexpected {extra}")
        sys.exit(1 if bad or extra else 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=meta)
    # Reload and check the round trip.
    back = load_file(str(out))
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(tensors)} tensors)")
    for k, v in meta.items():
        if k not in ("description",):
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
