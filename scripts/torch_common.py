"""What the PyTorch scripts beside this file share: the model definitions of
../shared/reference/make_reference.py (imported as `mr`) and an MNIST reader for the
official IDX files in datasets/mnist. Import it as `from torch_common import mr, mnist`
(a script run as `python scripts/NAME.py` finds it beside itself)."""
import gzip, importlib.util, pathlib, sys

import numpy as np
import torch

root = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_reference", root.parent / "shared/reference/make_reference.py")
mr = importlib.util.module_from_spec(_spec)
sys.modules["make_reference"] = mr
_spec.loader.exec_module(mr)


def _idx(path, offset):
    return np.frombuffer(gzip.open(path).read(), dtype=np.uint8, offset=offset)


def mnist(split, data):
    """(images [N,1,28,28] in [0, 1], labels [N] int64) of `split` ("train" or "t10k")."""
    d = pathlib.Path(data) / "mnist"
    x = _idx(d / f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y = _idx(d / f"{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
