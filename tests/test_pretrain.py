"""Stage pretrain: a tiny run, the released ImageNet key layout, checksums, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments.pretrain import TrunkClassifier, pretrain, train_settings
from seamlib.config import load_config
from seamlib.formats import sha256_file
from seamlib.models import build_model
from seamlib.models.seam import HEAD_NAMES
from seamlib.models.weights import load_weights, verify_trunk
from seamlib.trainer import lr_factor


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A smoke-profile config pretraining into a temporary folder, and its trunk."""
    tmp = tmp_path_factory.mktemp("pretrain")
    cfg = load_config("smoke", {"pretrain": {"out_dir": str(tmp / "run"),
                                             "trunk": str(tmp / "out" / "trunk.pth")}})
    return cfg, pretrain(cfg, "test", tmp / "out", progress=False)


def test_trunk_has_the_released_imagenet_layout_and_loads_like_it(tiny):
    cfg, path = tiny
    state = torch.load(path, weights_only=True)
    assert "conv1a.weight" in state and "bn7.running_var" in state
    assert "b4_5.conv_branch2b1.weight" in state and "b7.conv_branch2b2.weight" in state
    assert all(v.dtype == torch.float16 for v in state.values())
    assert not any(k.startswith(("backbone.", "head", "linear", "fc")) for k in state)
    assert not any(k.endswith("num_batches_tracked") for k in state)
    net = build_model(cfg.model)
    report = load_weights(net, path)
    assert report.kind == "imagenet" and report.source == "released" and not report.dropped
    assert {k.split(".")[0] for k in report.expected_missing} == set(HEAD_NAMES)
    assert torch.equal(net.backbone.conv1a.weight, state["conv1a.weight"].float())


def test_summary_pins_the_checksum_and_the_log(tiny):
    _, path = tiny
    summary = json.loads((path.parent / "pretrain.json").read_text())
    assert summary["sha256"] == sha256_file(path) and summary["command"] == "test"
    assert "distractor19" in (path.parent / "pretrain_datasheet.md").read_text()
    assert 0 <= summary["heldout_top1"] <= 1 and summary["classes"] == 40
    rows = [json.loads(line) for line in (path.parent / "pretrain_log.jsonl").open()]
    assert rows[-1]["step"] == summary["steps"] and rows[-1]["loss"] > 0


def test_rerun_resumes_to_the_same_bytes_and_other_settings_are_refused(tiny):
    cfg, path = tiny
    digest = sha256_file(path)
    path.unlink()
    assert sha256_file(pretrain(cfg, "test", path.parent, progress=False)) == digest
    cfg.pretrain.lr = 0.5
    with pytest.raises(ValueError, match="made with other settings: pretrain.lr was 0.05"):
        pretrain(cfg, "test", progress=False)


def test_verify_trunk(tmp_path, tiny):
    _, path = tiny
    assert verify_trunk(path, sha256_file(path)) == path
    with pytest.raises(ValueError, match="does not match"):
        verify_trunk(path, "0" * 64)
    with pytest.raises(FileNotFoundError, match="experiments pretrain --profile PROFILE --force"):
        verify_trunk(tmp_path / "none.pth", None)  # a missing file is named before the pin
    with pytest.raises(ValueError, match=f"trunk_sha256={sha256_file(path)}"):
        verify_trunk(path, None)


def test_learning_rate_warms_up_then_decays_to_zero():
    pc = load_config("proxy").pretrain
    train = train_settings(pc)
    lrs = [pc.lr * lr_factor(s, 1000, train) for s in range(1000)]
    assert lrs[0] < lrs[19] == pytest.approx(pc.lr)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:], strict=False)) and lrs[-1] < 1e-5


def test_decay_norm_false_leaves_bn_and_biases_undecayed():
    pc = load_config("smoke").pretrain
    net = TrunkClassifier(0.0625, 4)
    (group,) = net.parameter_groups(pc.lr, pc.weight_decay)
    assert group["weight_decay"] == pc.weight_decay and len(group["params"]) == len(
        list(net.parameters()))
    net.decay_norm = False
    decayed, flat = net.parameter_groups(pc.lr, pc.weight_decay)
    assert flat["weight_decay"] == 0.0 and decayed["weight_decay"] == pc.weight_decay
    assert {id(p) for p in flat["params"]} == {id(p) for p in net.parameters() if p.ndim == 1}
    bn = net.trunk.bn7
    assert any(p is bn.weight for p in flat["params"])
    assert not any(p is net.head.weight for p in flat["params"])
    assert len(decayed["params"]) + len(flat["params"]) == len(list(net.parameters()))


def test_committed_proxy_trunk_matches_its_checksum_and_loads_as_an_imagenet_trunk():
    cfg = load_config("proxy")
    path = verify_trunk(cfg.pretrain.trunk, cfg.pretrain.trunk_sha256)
    summary = json.loads(Path("results/proxy/pretrain.json").read_text())
    assert summary["sha256"] == cfg.pretrain.trunk_sha256 and path.stat().st_size < 8 * 2**20
    report = load_weights(build_model(cfg.model), cfg.model.weights)
    assert report.kind == "imagenet" and not report.dropped
    assert {k.split(".")[0] for k in report.expected_missing} == set(HEAD_NAMES)
