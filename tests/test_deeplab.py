"""DeepLab-LargeFOV on ResNet38: shapes, the authors' key names, BN and parameter groups,
loading trunks and checkpoints through load_weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seamlib.config import ModelConfig, SegmentationConfig
from seamlib.models import build_model
from seamlib.models.deeplab import HEAD_NAMES, DeepLabLargeFOV, build_deeplab
from seamlib.models.weights import load_weights, to_released

WIDTH = 0.0625


def tiny_deeplab(**seg) -> DeepLabLargeFOV:
    torch.manual_seed(0)
    return build_deeplab(ModelConfig(width=WIDTH), SegmentationConfig(**seg))


@pytest.mark.parametrize("size", [(32, 32), (33, 41)])
def test_logits_at_input_size_from_stride_8_features(size):
    net = tiny_deeplab().eval()
    seen = {}
    net.conv_fov.register_forward_hook(lambda m, i, o: seen.update(shape=i[0].shape))
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 21, *size)
    assert seen["shape"][2:] == tuple((s + 7) // 8 for s in size)


def test_authors_key_names_and_head_layout():
    net = tiny_deeplab()
    keys = net.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"backbone", *HEAD_NAMES}
    for key in ("backbone.conv1a.weight", "backbone.b4_5.bn_branch2b1.running_var",
                "backbone.bn7.weight", "conv_fov.weight", "bn_fov.running_mean",
                "conv_fov2.weight", "bn_fov2.bias", "cls_conv.weight", "cls_conv.bias"):
        assert key in keys
    assert "conv_fov.bias" not in keys and "conv_fov2.bias" not in keys
    assert net.conv_fov.kernel_size == (3, 3) and net.conv_fov.dilation == (12, 12)
    assert net.conv_fov.in_channels == round(4096 * WIDTH) and net.conv_fov.out_channels == 512
    assert isinstance(net.dropout1, nn.Dropout) and net.dropout1.p == 0.5


def test_reference_batchnorm_and_groups():
    net = tiny_deeplab().train()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training and m.momentum == 0.0003 for m in norms)  # batch statistics
    assert not any(p.requires_grad for m in norms for p in m.parameters())
    groups = {g["name"]: g for g in net.parameter_groups(0.001, 5e-4)}
    assert set(groups) == {"weight", "head_weight", "head_bias"}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert id(net.backbone.conv1a.weight) in ids["weight"]  # the reference trains conv1a
    assert ids["head_weight"] == {id(net.conv_fov.weight), id(net.conv_fov2.weight),
                                  id(net.cls_conv.weight)}
    assert ids["head_bias"] == {id(net.cls_conv.bias)}
    assert [(g["lr_mult"], g["weight_decay"]) for g in groups.values()] == [
        (1, 5e-4), (10, 5e-4), (20, 0.0)]
    assert groups["head_bias"]["lr"] == pytest.approx(0.02)


def test_frozen_bn_and_trainable_affine_settings():
    frozen = tiny_deeplab(frozen_bn=True).train()
    assert not any(m.training for m in frozen.modules() if isinstance(m, nn.BatchNorm2d))
    trainable = tiny_deeplab(train_bn_affine=True)
    norm = {g["name"]: g for g in trainable.parameter_groups(0.1, 1e-4)}["norm"]
    assert norm["weight_decay"] == 0 and len(norm["params"]) == 2 * sum(
        isinstance(m, nn.BatchNorm2d) for m in trainable.modules())


def test_only_resnet38():
    with pytest.raises(ValueError, match="model.backbone"):
        build_deeplab(ModelConfig(backbone="resnet50"), SegmentationConfig())


def test_trunk_from_imagenet_file_or_seam_checkpoint(tmp_path):
    seam = build_model(ModelConfig(width=WIDTH))
    with torch.no_grad():
        for p in seam.parameters():
            p.normal_()
    trunk = {k: v for k, v in to_released(seam.state_dict()).items()
             if not k.startswith(("fc8", "f8_", "f9"))}
    trunk["linear1000.weight"] = torch.zeros(1000, round(4096 * WIDTH))
    torch.save(trunk, tmp_path / "imagenet.pth")
    torch.save(to_released(seam.state_dict()), tmp_path / "seam.pth")
    for name in ("imagenet.pth", "seam.pth"):
        net = tiny_deeplab()
        head = net.conv_fov.weight.clone()
        report = load_weights(net, tmp_path / name, kind="imagenet")
        assert torch.equal(net.backbone.b7.conv_branch2b2.weight,
                           seam.backbone.b7.conv_branch2b2.weight)
        assert torch.equal(net.conv_fov.weight, head)
        assert "conv_fov.weight" in report.expected_missing


def test_own_checkpoint_round_trip_is_strict(tmp_path):
    trained = tiny_deeplab()
    with torch.no_grad():
        trained.cls_conv.bias.fill_(3.0)
    torch.save(trained.state_dict(), tmp_path / "model.pth")
    net = build_deeplab(ModelConfig(width=WIDTH), SegmentationConfig())
    report = load_weights(net, tmp_path / "model.pth")
    assert report.kind == "full" and torch.equal(net.cls_conv.bias, trained.cls_conv.bias)
    state = trained.state_dict()
    del state["bn_fov2.running_mean"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing from the file \(1\)"):
        load_weights(net, tmp_path / "partial.pth", kind="full")
    with pytest.raises(ValueError, match="width"):
        load_weights(build_deeplab(ModelConfig(width=0.125), SegmentationConfig()),
                     tmp_path / "model.pth")
