"""The ``voc`` profile's numbers, pinned bit for bit.

The voc forward, every loss term, the gradients of every parameter group and two optimiser
steps were checked against the authors' code; any refactor or speed-up must leave them
bit-identical. The expected values in ``data/voc_pin.json`` were written by this file's
``main`` on the commit that introduced it; rewrite them only for a change meant to alter voc
numbers (``python tests/test_voc_pin.py --write``), and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from seamlib.config import load_config
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.train import build_optimizer, poly_factor
from seamlib.transforms import parse_transform

PIN = Path(__file__).parent / "data" / "voc_pin.json"
STEPS = 2


def digest(tensors: list[torch.Tensor]) -> str:
    """sha256 of the tensors' raw bytes, in order: equal iff bit-identical."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def voc_numbers() -> dict:
    """Loss terms, per-group gradient digests and the parameters after two poly-SGD steps of
    the full-width voc network on a fixed batch (one thread: reductions in a fixed order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config("voc")
        torch.manual_seed(0)
        net = build_model(cfg.model).train()
        images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
        labels = torch.zeros(2, 20)
        labels[0, [2, 14]] = 1
        labels[1, 7] = 1
        opt = build_optimizer(net, cfg)
        transform = parse_transform(cfg.loss.transform)
        out: dict = {"steps": []}
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = cfg.train.lr * group["lr_mult"] * poly_factor(step, 10, 0.9)
            terms = seam_loss(net, images, labels, transform, cfg.loss)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            grads = {g["name"]: digest([p.grad for p in g["params"]]) for g in opt.param_groups}
            out["steps"].append({"terms": {k: v.item() for k, v in terms.items()},
                                 "grads": grads})
            opt.step()
        out["params"] = digest(list(net.state_dict().values()))
        return out
    finally:
        torch.set_num_threads(threads)


def test_voc_numbers_are_bit_identical() -> None:
    expected = json.loads(PIN.read_text())
    got = voc_numbers()
    for i, (e, g) in enumerate(zip(expected["steps"], got["steps"], strict=True)):
        assert g["terms"] == e["terms"], f"step {i}: voc loss terms changed"
        assert g["grads"] == e["grads"], f"step {i}: voc gradients changed"
    assert got["params"] == expected["params"], "voc parameters after two steps changed"


if __name__ == "__main__":
    if "--write" not in sys.argv:
        print(json.dumps(voc_numbers(), indent=1))
    else:
        PIN.write_text(json.dumps(voc_numbers(), indent=1) + "\n")
        print(f"wrote {PIN}")
