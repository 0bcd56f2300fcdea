"""Weight files: released names, the MXNet .params reader, load_weights' checks, save_released."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from seamlib.config import ModelConfig
from seamlib.models import build_model
from seamlib.models.affinity import build_affinity_net
from seamlib.models.weights import (
    LoadReport,
    from_released,
    load_weights,
    mxnet_to_resnet38,
    read_mxnet_params,
    save_released,
    to_released,
)

WIDTH = 0.0625
HEAD_KEYS = ("fc8.weight", "f8_3.weight", "f8_4.weight", "pcm.f9.weight")

# ---------------------------------------------------------------------------------------------
# A writer of MXNet's NDArray list format, independent of the reader under test.

MX_FLAGS = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2,
            np.dtype(np.uint8): 3, np.dtype(np.int32): 4, np.dtype(np.int8): 5,
            np.dtype(np.int64): 6}
MX_MAGIC = {"v1": 0xF993FAC8, "v2": 0xF993FAC9, "v3": 0xF993FACA}
MX_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
         "running_var": "moving_var"}


def mx_array_bytes(a: np.ndarray, version: str, storage_type: int = 0,
                   flag: int | None = None) -> bytes:
    """One serialised NDArray in the given format version ("legacy", "v1", "v2", "v3")."""
    if version == "legacy":
        out = struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
    else:
        out = struct.pack("<I", MX_MAGIC[version])
        if version in ("v2", "v3"):
            out += struct.pack("<i", storage_type)
        out += struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
    if a.ndim == 0:
        return out
    flag = MX_FLAGS[a.dtype] if flag is None else flag
    return out + struct.pack("<iii", 1, 0, flag) + a.astype(a.dtype.newbyteorder("<")).tobytes()


def write_mxnet(path: Path, arrays: dict[str, np.ndarray], version: str = "v2",
                names: list[str] | None = None, **array_kw) -> Path:
    """Write ``arrays`` the way mx.nd.save does (names default to the dict keys)."""
    names = list(arrays) if names is None else names
    out = struct.pack("<QQQ", 0x112, 0, len(arrays))
    out += b"".join(mx_array_bytes(a, version, **array_kw) for a in arrays.values())
    out += struct.pack("<Q", len(names))
    for name in names:
        raw = name.encode()
        out += struct.pack("<Q", len(raw)) + raw
    path.write_bytes(out)
    return path


def mxnet_name(released: str) -> str:
    """The original MXNet name of a released ResNet38 trunk key (test-side inverse)."""
    module, param = released.rsplit(".", 1)
    prefix = "aux" if param.startswith("running") else "arg"
    if module == "conv1a":
        return "arg:conv1a_weight"
    if module == "bn7":
        return f"{prefix}:bn7_{MX_BN[param]}"
    block, layer = module.split(".")
    stage, _, index = block[1:].partition("_")
    tag = f"{stage}b{index}" if index else f"{stage}a"
    layer_type, branch = layer.split("_", 1)
    if layer_type == "conv":
        return f"arg:res{tag}_{branch}_weight"
    return f"{prefix}:bn{tag}_{branch}_{MX_BN[param]}"


# ---------------------------------------------------------------------------------------------
# Helpers


def narrow(width: float = WIDTH, seed: int | None = None):
    """A narrow SEAMNet; with a seed, every tensor is filled with distinct random values."""
    net = build_model(ModelConfig(width=width))
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for v in net.state_dict().values():
                if v.is_floating_point():
                    v.copy_(torch.randn(v.shape, generator=gen))
    return net


def trunk_released(net) -> dict[str, torch.Tensor]:
    """An ImageNet-style released trunk file: flat names, no num_batches_tracked."""
    return {k[len("backbone."):]: v.clone() for k, v in net.state_dict().items()
            if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}


def assert_same(net, reference, keys) -> None:
    got, want = net.state_dict(), reference.state_dict()
    for k in keys:
        assert torch.equal(got[k], want[k]), k


def weight_keys(net, prefix: str = "") -> list[str]:
    return [k for k in net.state_dict() if k.startswith(prefix)
            and not k.endswith("num_batches_tracked")]


@pytest.fixture(scope="module")
def resnet50_net():
    return build_model(ModelConfig(backbone="resnet50"))


# ---------------------------------------------------------------------------------------------
# Key names


def test_released_names_round_trip():
    sd = narrow().state_dict()
    released = to_released(sd)
    assert not any(k.startswith("backbone.") for k in released)
    assert {"conv1a.weight", "b2.bn_branch2a.running_mean", "b6.conv_branch2b2.weight",
            "bn7.weight", "fc8.weight", "f8_3.weight", "f8_4.weight", "f9.weight"} <= set(released)
    back = from_released(released)
    assert list(back) == list(sd) and all(back[k] is sd[k] for k in sd)
    assert to_released(back) == released


def test_released_names_reject_unknown_keys():
    with pytest.raises(ValueError, match="not a SEAMNet key"):
        to_released({"classifier.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unambiguous"):
        to_released({"backbone.f9.weight": torch.zeros(1)})  # would come back as pcm.f9


def test_save_released_then_load(tmp_path):
    src = narrow(seed=1)
    path = save_released(src, tmp_path / "model.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]  # no temp file left over
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {k for k in to_released(src.state_dict())
                          if not k.endswith("num_batches_tracked")}
    dst = narrow()
    report = load_weights(dst, path)
    assert (report.kind, report.source, report.expected_missing) == ("seam", "released", ())
    assert report.loaded == len(saved)
    assert_same(dst, src, weight_keys(src))
    assert "SEAM checkpoint" in str(report) and str(len(saved)) in str(report)


def test_training_checkpoint_with_our_names(tmp_path):
    src = narrow(seed=2)
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": src.state_dict(), "optimizer": {"state": {}}, "step": 3}, path)
    dst = narrow()
    report = load_weights(dst, path)
    assert (report.kind, report.source) == ("seam", "seamlib")
    assert_same(dst, src, list(src.state_dict()))


# ---------------------------------------------------------------------------------------------
# MXNet reader


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_mxnet_reader_formats_and_dtypes(tmp_path, version):
    rng = np.random.default_rng(0)
    arrays = {f"arg:a_{dt.name}": (rng.normal(size=(2, 3, 1)) * 50).astype(dt) for dt in MX_FLAGS}
    arrays["aux:vector"] = np.arange(5, dtype=np.float32)
    arrays["empty"] = np.zeros((), dtype=np.float32)  # ndim 0: stored without data
    got = read_mxnet_params(write_mxnet(tmp_path / "x.params", arrays, version))
    assert list(got) == list(arrays)
    for name, a in arrays.items():
        if a.ndim == 0:
            assert got[name].size == 0
        else:
            assert got[name].dtype == a.dtype and got[name].shape == a.shape
            np.testing.assert_array_equal(got[name], a)


def test_mxnet_reader_errors(tmp_path):
    arrays = {"arg:w": np.ones((2, 2), np.float32), "arg:v": np.ones(3, np.float32)}
    good = write_mxnet(tmp_path / "good.params", arrays).read_bytes()
    cases = {
        "truncated": (good[:-20], "truncated"),
        "cut_in_data": (good[:60], "truncated"),
        "bad_magic": (struct.pack("<Q", 0x113) + good[8:], "expected 0x112"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.params"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message) as err:
            read_mxnet_params(path)
        assert str(path) in str(err.value)
    sparse = write_mxnet(tmp_path / "sparse.params", arrays, storage_type=1)
    with pytest.raises(ValueError, match=r"array 0 has storage type 1"):
        read_mxnet_params(sparse)
    bad_dtype = write_mxnet(tmp_path / "dtype.params", arrays, flag=12)
    with pytest.raises(ValueError, match="unknown dtype flag 12"):
        read_mxnet_params(bad_dtype)
    few_names = write_mxnet(tmp_path / "names.params", arrays, names=["arg:w"])
    with pytest.raises(ValueError, match="2 arrays but 1 names"):
        read_mxnet_params(few_names)


def test_mxnet_names():
    zeros = np.zeros(1, np.float32)
    names = {"arg:conv1a_weight": "conv1a.weight",
             "arg:res2a_branch1_weight": "b2.conv_branch1.weight",
             "arg:res4b3_branch2a_weight": "b4_3.conv_branch2a.weight",
             "arg:res7a_branch2b2_weight": "b7.conv_branch2b2.weight",
             "arg:bn5b2_branch2b1_gamma": "b5_2.bn_branch2b1.weight",
             "aux:bn6a_branch2a_moving_var": "b6.bn_branch2a.running_var",
             "bn3a_branch2a_beta": "b3.bn_branch2a.bias",
             "aux:bn7_moving_mean": "bn7.running_mean"}
    out = mxnet_to_resnet38({**{k: zeros for k in names}, "arg:linear1000_weight": zeros,
                             "arg:linear1000_bias": zeros})
    assert sorted(out) == sorted(names.values())
    with pytest.raises(ValueError, match="2 MXNet parameter names") as err:
        mxnet_to_resnet38({"arg:res2a_branch2a_gamma": zeros, "arg:fc_weight": zeros,
                           "arg:conv1a_weight": zeros})
    assert "res2a_branch2a_gamma" in str(err.value) and "fc_weight" in str(err.value)


@pytest.mark.parametrize("version", ["v2", "legacy"])
def test_load_mxnet_imagenet_params(tmp_path, version):
    src = narrow(seed=3)
    arrays = {mxnet_name(k): v.numpy() for k, v in trunk_released(src).items()}
    c = src.backbone.channels["conv6"]
    arrays["arg:linear1000_weight"] = np.ones((1000, c), np.float32)
    arrays["arg:linear1000_bias"] = np.ones(1000, np.float32)
    path = write_mxnet(tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params", arrays, version)
    dst = narrow()
    head_before = {k: dst.state_dict()[k].clone() for k in HEAD_KEYS}
    report = load_weights(dst, path)
    assert (report.kind, report.source) == ("imagenet", "mxnet")
    assert report.loaded == len(arrays) - 2 == len(weight_keys(dst, "backbone."))
    assert report.expected_missing == HEAD_KEYS
    assert report.dropped == ("arg:linear1000_weight", "arg:linear1000_bias")
    assert_same(dst, src, weight_keys(src, "backbone."))
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in head_before.items())


# ---------------------------------------------------------------------------------------------
# ImageNet .pth files


@pytest.mark.parametrize("classifier", ["linear1000.weight", "fc8.weight"])
def test_load_imagenet_pth_without_num_batches_tracked(tmp_path, classifier):
    src = narrow(seed=4)
    state = trunk_released(src)
    state[classifier] = torch.ones(1000, src.backbone.channels["conv6"], 1, 1)
    path = tmp_path / "ilsvrc.pth"
    torch.save(state, path)
    dst = narrow()
    report = load_weights(dst, path)
    assert (report.kind, report.source) == ("imagenet", "released")
    assert report.dropped == (classifier,) and report.expected_missing == HEAD_KEYS
    assert report.loaded == len(state) - 1
    assert_same(dst, src, weight_keys(src, "backbone."))


def test_load_torchvision_resnet50(tmp_path, resnet50_net):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(tv, path)
    report = load_weights(resnet50_net, path)
    assert report.kind == "imagenet" and report.dropped == ("fc.weight", "fc.bias")
    assert report.loaded == len(tv) - 2 and report.expected_missing == HEAD_KEYS
    got = resnet50_net.state_dict()
    assert all(torch.equal(got[f"backbone.{k}"], v) for k, v in tv.items()
               if not k.startswith("fc."))


def test_resnet38_file_into_resnet50_names_the_backbone(tmp_path, resnet50_net):
    path = tmp_path / "r38.pth"
    torch.save(trunk_released(narrow()), path)
    with pytest.raises(ValueError, match="backbone=ResNet50") as err:
        load_weights(resnet50_net, path)
    assert "ModelConfig(backbone='resnet38')" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Mismatches and bad files


@pytest.mark.parametrize("checkpoint", [False, True])
def test_wrong_width_is_explained(tmp_path, checkpoint):
    wide = narrow(width=0.125)
    path = tmp_path / "wide.pth"
    if checkpoint:
        save_released(wide, path)
    else:
        torch.save(trunk_released(wide), path)
    with pytest.raises(ValueError) as err:
        load_weights(narrow(), path)
    msg = str(err.value)
    assert str(path) in msg and "mis-shaped (" in msg and "width=0.0625" in msg
    assert "ModelConfig(width=0.125)" in msg
    assert "backbone.conv1a.weight: file (8, 3, 3, 3), model (4, 3, 3, 3)" in msg


def test_the_other_networks_checkpoint_is_named(tmp_path):
    cfg = ModelConfig(width=WIDTH, frozen_bn=False, frozen_stem=False, weights=None)
    aff, seam = build_affinity_net(cfg, radius=5), build_model(cfg)
    save_released(aff, tmp_path / "aff.pth")
    save_released(seam, tmp_path / "seam.pth")
    with pytest.raises(ValueError, match=r"read as SEAM checkpoint(.|\n)*hint: the file is an "
                       r"AffinityNet checkpoint \(it has f8_5\)"):
        load_weights(seam, tmp_path / "aff.pth", kind="seam")
    with pytest.raises(ValueError, match=r"hint: the model is an AffinityNet and the file is not "
                       r"one of its checkpoints"):
        load_weights(aff, tmp_path / "seam.pth", kind="full")
    assert load_weights(aff, tmp_path / "aff.pth").loaded > 0  # its own still loads


def test_missing_and_unexpected_keys(tmp_path):
    state = trunk_released(narrow())
    del state["b4_2.conv_branch2a.weight"]
    state["b9.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_weights(narrow(), path)
    msg = str(err.value)
    assert "missing from the file (1):\n    backbone.b4_2.conv_branch2a.weight" in msg
    assert "unexpected in the file (1):\n    backbone.b9.weight" in msg


def test_checkpoint_is_strict(tmp_path):
    state = to_released(narrow().state_dict())
    del state["f8_4.weight"]
    path = tmp_path / "seam.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"SEAM checkpoint.*\n.*missing from the file \(1\)"):
        load_weights(narrow(), path)
    report = load_weights(narrow(), path, kind="imagenet")  # the trunk alone still loads
    assert report.expected_missing == HEAD_KEYS and "f8_3.weight" in report.dropped


@pytest.mark.parametrize("content", [b"hello, these are not weights\n", bytes(range(256)) * 4,
                                     "list"])
def test_not_a_weights_file(tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "list":
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_weights(narrow(), path)


def test_bad_params_file_and_kind(tmp_path):
    path = tmp_path / "weights.params"
    path.write_text("not mxnet either\n")
    with pytest.raises(ValueError, match="not an MXNet NDArray file"):
        load_weights(narrow(), path)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_weights(narrow(), path, kind="imagenet1k")
    with pytest.raises(FileNotFoundError):
        load_weights(narrow(), tmp_path / "absent.pth")


def test_report_is_printable():
    report = LoadReport("w.pth", "imagenet", "mxnet", 10, HEAD_KEYS, ("arg:linear1000_bias",))
    text = str(report)
    assert "loaded 10 tensors from w.pth" in text and "pcm.f9.weight" in text
    assert "linear1000" in text


# ------------------------------------------------------------------ required pretrained weights

def test_voc_refuses_to_train_without_its_imagenet_weights(tmp_path, monkeypatch):
    from seamlib.config import IMAGENET_WEIGHTS, load_config
    from seamlib.models.weights import require_weights
    from seamlib.stages.train_cam import train_cam

    monkeypatch.chdir(tmp_path)  # no data/weights/ here
    cfg = load_config("voc", {"train_cam": {"out_dir": str(tmp_path / "run")}})
    assert cfg.model.weights == IMAGENET_WEIGHTS
    with pytest.raises(FileNotFoundError) as err:
        train_cam(cfg, progress=False)
    msg = str(err.value)
    for part in ("ilsvrc-cls_rna-a1_cls1000_ep-0001.params", "itijyou/ademxapp", ".pth",
                 "data/weights/", "model.frozen_bn"):
        assert part in msg, part
    assert not (tmp_path / "run").exists()  # refused before anything was written
    (tmp_path / IMAGENET_WEIGHTS).parent.mkdir(parents=True)
    (tmp_path / IMAGENET_WEIGHTS).write_bytes(b"weights")
    require_weights(cfg.model)  # present and readable: no error


@pytest.mark.parametrize("frozen", [{"frozen_bn": True}, {"frozen_stem": True}])
def test_any_frozen_profile_needs_weights(frozen, tmp_path):
    from seamlib.config import load_config
    from seamlib.models.weights import require_weights

    smoke = load_config("smoke", {"model": frozen})
    with pytest.raises(FileNotFoundError, match="model.weights is not set"):
        require_weights(smoke.model)
    missing = load_config("smoke", {"model": {**frozen, "weights": str(tmp_path / "missing.pth")}})
    with pytest.raises(FileNotFoundError, match="missing.pth is not a readable file"):
        require_weights(missing.model)
    require_weights(load_config("smoke").model)  # from scratch, no weights: fine
