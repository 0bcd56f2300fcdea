"""Network shapes, strides, freezing rules and parameter groups."""

import pytest
import torch
from torch import nn

from seamlib.config import ModelConfig
from seamlib.models import build_model
from seamlib.models.resnet38 import ResNet38


@pytest.mark.parametrize("size", [(32, 32), (37, 45), (40, 24)])
def test_resnet38_feature_strides(size):
    net = ResNet38(width=0.0625).eval()
    feats = net(torch.randn(1, 3, *size))
    for name, ch in net.channels.items():
        stride = 4 if name == "conv3" else 8  # conv3 is b4's input, before its stride 2
        expected = tuple(-(-s // stride) for s in size)  # ceil(s / stride)
        assert feats[name].shape == (1, ch, *expected), name


def test_resnet38_full_width_channels():
    net = ResNet38(width=1.0)
    assert net.channels == {"conv3": 256, "conv4": 512, "conv5": 1024, "conv6": 4096}
    assert net.b6.conv_branch2b1.dilation == (4, 4) and net.b5.conv_branch2a.dilation == (1, 1)
    assert net.b5_1.conv_branch2a.dilation == (2, 2)
    assert net.b7.dropout_2b1.p == 0.5 and net.b6.dropout_2b1.p == 0.3


@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
def test_seam_outputs_at_input_size(size):
    net = build_model(ModelConfig(width=0.0625)).eval()
    out = net(torch.randn(2, 3, *size))
    assert out.cam.shape == out.cam_rv.shape == (2, 21, *size)
    assert net(torch.randn(1, 3, *size), with_pcm=False).cam_rv is None


@pytest.mark.parametrize("stride", [8, 16])
def test_resnet50_backbone_strides(stride):
    net = build_model(ModelConfig(backbone="resnet50", output_stride=stride)).eval()
    with torch.no_grad():
        feats = net.backbone(torch.randn(1, 3, 64, 64))
        out = net(torch.randn(1, 3, 64, 64))
    assert feats["conv6"].shape[2:] == (64 // stride, 64 // stride)
    assert feats["conv4"].shape[2:] == (8, 8)
    assert out.cam_rv.shape == (1, 21, 64, 64)


def test_bad_model_settings_name_the_setting():
    with pytest.raises(ValueError, match="model.backbone"):
        build_model(ModelConfig(backbone="vgg16"))
    with pytest.raises(ValueError, match="model.output_stride"):
        build_model(ModelConfig(backbone="resnet50", output_stride=4))
    with pytest.raises(ValueError, match="model.width"):
        build_model(ModelConfig(backbone="resnet50", width=0.5))


def batchnorms(net):
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def test_reference_freezing():
    net = build_model(ModelConfig(width=0.0625, frozen_bn=True, frozen_stem=True)).train()
    assert all(not m.training for m in batchnorms(net))
    assert all(not p.requires_grad for m in batchnorms(net) for p in m.parameters())
    for name in ("conv1a", "b2", "b2_1", "b2_2"):
        assert all(not p.requires_grad for p in getattr(net.backbone, name).parameters())
    assert net.backbone.b3.conv_branch2a.weight.requires_grad
    running = net.backbone.b3.bn_branch2a.running_mean.clone()
    net(torch.randn(2, 3, 32, 32))
    assert torch.equal(running, net.backbone.b3.bn_branch2a.running_mean)


def test_trainable_normalisation_for_scratch_training():
    net = build_model(ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False)).train()
    assert all(m.training for m in batchnorms(net))
    assert all(p.requires_grad for p in net.parameters())
    running = net.backbone.b3.bn_branch2a.running_mean.clone()
    net(torch.randn(2, 3, 32, 32))
    assert not torch.equal(running, net.backbone.b3.bn_branch2a.running_mean)


def test_parameter_groups_carry_reference_multipliers():
    net = build_model(ModelConfig(width=0.0625))
    net.fc8.bias = nn.Parameter(torch.zeros(21))  # give the head a bias to see its group
    groups = {g["name"]: g for g in net.parameter_groups(lr=0.01, weight_decay=5e-4)}
    assert set(groups) == {"weight", "head_weight", "head_bias"}  # no biases in the backbone
    assert groups["weight"]["lr"] == pytest.approx(0.01)
    assert groups["weight"]["weight_decay"] == 5e-4
    assert groups["head_weight"]["lr"] == pytest.approx(0.1)
    assert groups["head_bias"]["lr"] == pytest.approx(0.2)
    assert groups["head_bias"]["weight_decay"] == 0
    head = {id(p) for p in groups["head_weight"]["params"]}
    assert head == {id(net.fc8.weight), id(net.f8_3.weight), id(net.f8_4.weight),
                    id(net.pcm.f9.weight)}
    n_trainable = sum(1 for p in net.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups.values()) == n_trainable


def test_parameter_groups_include_trainable_norm_without_decay():
    net = build_model(ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False))
    groups = {g["name"]: g for g in net.parameter_groups(lr=0.1, weight_decay=1e-4)}
    assert groups["norm"]["weight_decay"] == 0 and groups["norm"]["lr"] == pytest.approx(0.1)
    assert sum(len(g["params"]) for g in groups.values()) == len(list(net.parameters()))
