"""The ``voc`` profile's numbers, pinned bit for bit.

The voc forward, every loss term, the gradients of every parameter group and two optimiser
steps were checked against the authors' code; any refactor or speed-up must leave them
bit-identical. Float results depend on the CPU's vector instructions (oneDNN and the BLAS pick
kernels by ISA), so ``data/voc_pin.json`` holds one pin per machine kind (torch version, torch's
CPU capability, CPU model): on a known kind the numbers must be bit-identical; on another one
they must agree with every pin to 1e-5 (relative) and a warning asks for a pin of that kind.
Add a machine with ``python tests/test_voc_pin.py --write`` on an unchanged checkout; rewrite
existing pins only for a change meant to alter voc numbers, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seamlib.config import load_config
from seamlib.device import keep_freed_memory
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.trainer import build_optimizer, poly_factor
from seamlib.transforms import parse_transform

pytestmark = pytest.mark.slow  # the whole module: seconds, not milliseconds

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
        opt = build_optimizer(net, cfg.train_cam)
        transform = parse_transform(cfg.loss.transform)
        out: dict = {"steps": []}
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = cfg.train_cam.lr * group["lr_mult"] * poly_factor(step, 10, 0.9)
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


def machine() -> dict[str, str]:
    """What the float results depend on besides the code: torch, its CPU kernels, the CPU."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor())
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": cpu}


def assert_bit_identical(got: dict, expected: dict) -> None:
    for i, (e, g) in enumerate(zip(expected["steps"], got["steps"], strict=True)):
        assert g["terms"] == e["terms"], f"step {i}: voc loss terms changed"
        assert g["grads"] == e["grads"], f"step {i}: voc gradients changed"
    assert got["params"] == expected["params"], "voc parameters after two steps changed"


# Another CPU kind's kernels may differ in the last float bits of a sum, nothing more: loss
# terms within this relative tolerance of every pin (a pin for the kind: `--write`).
OTHER_MACHINE_RTOL = 1e-5


def check_against(pins: list[dict], got: dict, here: dict) -> str:
    """Bit-identical to the pin of this machine kind, else within ``OTHER_MACHINE_RTOL`` of
    every pin; return which check ran."""
    same = [p["numbers"] for p in pins if p["machine"] == here]
    if same:
        assert_bit_identical(got, same[0])
        return "bit-identical"
    for pin in pins:
        for e, g in zip(pin["numbers"]["steps"], got["steps"], strict=True):
            assert g["terms"] == pytest.approx(e["terms"], rel=OTHER_MACHINE_RTOL), \
                "voc loss terms changed"
    return f"within {OTHER_MACHINE_RTOL:g}"


@pytest.fixture(scope="module")
def got() -> dict:
    return voc_numbers()


def test_voc_numbers_are_bit_identical(got: dict) -> None:
    check_against(json.loads(PIN.read_text())["pins"], got, machine())


def test_a_changed_number_fails_on_known_and_unknown_machines(got: dict) -> None:
    changed = json.loads(json.dumps(got))
    changed["steps"][1]["terms"]["ecr"] *= 1 + 1e-7  # the last bits: only the exact pin sees it
    here, other = machine(), {"torch": "x", "cpu_capability": "x", "cpu": "x"}
    with pytest.raises(AssertionError, match="loss terms changed"):
        check_against([{"machine": here, "numbers": changed}], got, here)
    assert check_against([{"machine": other, "numbers": changed}], got, here) == "within 1e-05"
    changed["steps"][0]["terms"]["er"] *= 1.001
    with pytest.raises(AssertionError, match="loss terms changed"):
        check_against([{"machine": other, "numbers": changed}], got, here)


def test_keeping_freed_memory_changes_no_voc_number(got: dict) -> None:
    """``seam`` runs with ``keep_freed_memory`` (an allocator setting): same bits as without."""
    done = subprocess.run([sys.executable, __file__, "--keep-freed-memory"], capture_output=True,
                          text=True, check=True)
    kept = json.loads(done.stdout)
    assert kept["kept"] is True  # glibc took the setting: the check compared something
    assert_bit_identical(kept["numbers"], got)


if __name__ == "__main__":
    if "--keep-freed-memory" in sys.argv:
        kept = keep_freed_memory()
        print(json.dumps({"kept": kept, "numbers": voc_numbers()}))
    elif "--write" not in sys.argv:
        print(json.dumps({"machine": machine(), "numbers": voc_numbers()}, indent=1))
    else:
        pins = [p for p in json.loads(PIN.read_text())["pins"] if p["machine"] != machine()]
        pins.append({"machine": machine(), "numbers": voc_numbers()})
        PIN.write_text(json.dumps({"pins": pins}, indent=1) + "\n")
        print(f"wrote {PIN} ({len(pins)} machine kinds)")
