"""SEAM losses against hand computations on tiny tensors, and the siamese step's switches."""

import math

import pytest
import torch
import torch.nn.functional as F

from seamlib.config import LossConfig, ModelConfig
from seamlib.losses import (
    adaptive_min_pooling_loss,
    classification_loss,
    equivariant_cross_loss,
    equivariant_loss,
    max_norm,
    onehot_max,
    seam_loss,
    with_background,
)
from seamlib.models import build_model
from seamlib.transforms import Rescale


def test_max_norm_hand_values():
    cam = torch.tensor([[[[-1.0, 1.0], [3.0, 5.0]]]])  # relu -> 0, 1, 3, 5
    out = max_norm(cam)
    expected = torch.tensor([0.0, 1 - 1e-5, 3 - 1e-5, 5 - 1e-5]).clamp(min=0) / (5 + 1e-5)
    torch.testing.assert_close(out.flatten(), expected)


def test_background_and_onehot_max():
    cam = torch.tensor([[[[0.0, 0.0]], [[0.2, 0.9]], [[0.6, 0.9]]]])
    bg = with_background(cam)
    torch.testing.assert_close(bg[0, 0, 0], torch.tensor([0.4, 0.1]))
    oh = onehot_max(bg)
    torch.testing.assert_close(oh[0, 1:, 0], torch.tensor([[0.0, 0.9], [0.6, 0.9]]))  # ties kept
    torch.testing.assert_close(oh[:, 0], bg[:, 0])


def test_classification_loss_is_soft_margin_on_pooled_foreground():
    cam = torch.zeros(1, 3, 2, 2)
    cam[0, 1] = 2.0
    cam[0, 2] = -1.0
    labels = torch.tensor([[1.0, 0.0]])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert classification_loss(cam, labels).item() == pytest.approx(expected, rel=1e-6)


def test_adaptive_min_pooling_takes_lowest_quarter():
    cam = torch.arange(16.0).view(1, 1, 4, 4) - 1.0  # -1..14; lowest 4 = -1, 0, 1, 2
    assert adaptive_min_pooling_loss(cam).item() == pytest.approx((0 + 0 + 1 + 2) / 4)


def test_perfectly_equivariant_cams_give_zero_er():
    a = Rescale(0.5)
    cam = torch.rand(2, 21, 8, 8)
    assert equivariant_loss(a(cam), a(cam)).item() == 0.0


def test_misaligned_cams_give_hand_computed_er():
    cam_o = torch.zeros(1, 2, 1, 4)
    cam_t = torch.zeros(1, 2, 1, 4)
    cam_o[0, 1, 0, 0] = 1.0  # object at column 0 ...
    cam_t[0, 1, 0, 1] = 0.5  # ... seen at column 1 with half the score
    cam_o[0, 0] = 9.0  # background channel does not count
    assert equivariant_loss(cam_o, cam_t).item() == pytest.approx((1.0 + 0.5) / 4)


def test_ecr_topk_keeps_hardest_elements():
    cam_o = torch.zeros(1, 2, 1, 5)
    cam_t = torch.zeros(1, 2, 1, 5)
    rv_o = torch.zeros(1, 2, 1, 5)
    rv_t = torch.zeros(1, 2, 1, 5)
    rv_o[0, 1, 0] = torch.tensor([0.9, 0.1, 0.3, 0.0, 0.7])  # |0 - rv_o|: top 2 of 10 = .9, .7
    rv_t[0, 0, 0, 2] = 0.4  # only one error: top 2 = .4, 0
    loss = equivariant_cross_loss(cam_o, rv_o, cam_t, rv_t, topk_ratio=0.2)
    assert loss.item() == pytest.approx((0.9 + 0.7) / 2 + 0.4 / 2)


def test_ecr_targets_are_detached():
    cam_o = torch.rand(1, 3, 2, 2, requires_grad=True)
    cam_t = torch.rand(1, 3, 2, 2, requires_grad=True)
    rv = torch.rand(1, 3, 2, 2, requires_grad=True)
    equivariant_cross_loss(cam_o, rv, cam_t, rv).backward()
    assert cam_o.grad is None and cam_t.grad is None and rv.grad is not None


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False))


@pytest.mark.parametrize("flags, terms", [
    ({}, {"cls", "rvmin", "er", "ecr", "loss"}),
    ({"use_er": False, "use_ecr": False, "use_rvmin": False}, {"cls", "loss"}),
    ({"use_ecr": False, "use_rvmin": False}, {"cls", "er", "loss"}),
    ({"use_er": False}, {"cls", "rvmin", "ecr", "loss"}),
])
def test_seam_loss_switches_and_total(net, flags, terms):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 40, 40)
    labels = torch.tensor([[1.0] + [0.0] * 19, [0.0, 1.0] + [0.0] * 18])
    out = seam_loss(net.train(), images, labels, Rescale(0.3), LossConfig(**flags))
    assert set(out) == terms
    parts = sum(v for k, v in out.items() if k != "loss")
    torch.testing.assert_close(out["loss"], parts)
    out["loss"].backward()
    assert net.fc8.weight.grad.abs().sum() > 0
    net.zero_grad()


def test_baseline_classification_matches_direct_computation(net):
    torch.manual_seed(2)
    images = torch.randn(2, 3, 32, 32)
    labels = torch.zeros(2, 20)
    labels[:, 4] = 1
    net.eval()
    cfg = LossConfig(use_er=False, use_ecr=False, use_rvmin=False)
    out = seam_loss(net, images, labels, Rescale(0.3), cfg)
    cam = net(images, with_pcm=False).cam
    expected = F.multilabel_soft_margin_loss(cam[:, 1:].mean((2, 3)), labels)
    torch.testing.assert_close(out["cls"], expected)
