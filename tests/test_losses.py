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
    # a ratio below one element of the map still keeps the hardest one (not a mean of none)
    loss = equivariant_cross_loss(cam_o, rv_o, cam_t, rv_t, topk_ratio=0.01)
    assert loss.item() == pytest.approx(0.9 + 0.4)


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


def test_two_branches_average_both_branches_classification(net):
    torch.manual_seed(3)
    images = torch.randn(2, 3, 32, 32)
    labels = torch.zeros(2, 20)
    labels[:, 7] = 1
    net.eval()
    cfg = LossConfig(use_er=False, use_ecr=False, use_rvmin=False, two_branches=True)
    out = seam_loss(net, images, labels, Rescale(0.5), cfg)
    assert set(out) == {"cls", "loss"}
    cams = [net(x, with_pcm=False).cam for x in (images, Rescale(0.5)(images))]
    expected = sum(F.multilabel_soft_margin_loss(c[:, 1:].mean((2, 3)), labels) for c in cams)
    torch.testing.assert_close(out["cls"], expected / 2)


# --------------------------------------------- seam_loss against the reference composition

class TinyNet(torch.nn.Module):
    """A fixed two-output network shaped like SEAMNet: raw CAM (N, 21, H, W) and a PCM-like
    refinement of it, with position-dependent weights so neither output is equivariant."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.fc8 = torch.nn.Conv2d(3, 21, 3, padding=1)
        self.pcm = torch.nn.Conv2d(21, 21, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen)

    def forward(self, x, with_pcm=True):
        cam = self.fc8(x)
        return cam, (self.pcm(cam.detach()) if with_pcm else None)


def reference_terms(net, images, labels, ratio=0.2):
    """The authors' SEAM loss, written out step by step, independent of seamlib.losses."""
    eps = 1e-5
    n = len(images)

    def a(x):  # the reference transform: bilinear rescale by 0.3, corners aligned
        return F.interpolate(x, scale_factor=0.3, mode="bilinear", align_corners=True)

    def norm(cam):  # per-channel max-normalisation of the ReLU'd map
        cam = torch.relu(cam)
        lo = cam.amin((2, 3), keepdim=True)
        hi = cam.amax((2, 3), keepdim=True)
        return torch.relu(cam - lo - eps) / (hi - lo + eps)

    def soft_margin(cam):  # multi-label soft margin of the pooled foreground scores
        x = cam[:, 1:].mean((2, 3))
        return -(labels * F.logsigmoid(x) + (1 - labels) * F.logsigmoid(-x)).mean()

    def min_pool(rv):  # the quarter of pixels with the lowest best-class score, to zero
        best = (rv * mask)[:, 1:].amax(1).reshape(n, -1)
        k = best.shape[1] // 4
        return torch.relu(best.sort(1).values[:, :k]).sum() / (k * n)

    def hardest(err):  # mean of each image's top 20% absolute errors
        flat = err.abs().reshape(n, -1)
        return flat.sort(1, descending=True).values[:, :int(flat.shape[1] * ratio)].mean()

    def onehot_with_bg(cam):  # background 1 - max fg; fg kept only at the per-pixel max
        fg = cam[:, 1:].detach()
        top = fg.amax(1, keepdim=True)
        return torch.cat([1 - top, fg * (fg == top)], 1)

    mask = torch.cat([torch.ones(n, 1), labels], 1)[:, :, None, None]
    cam1, rv1 = net(images)
    cam2, rv2 = net(a(images))
    cam1n, cam2n = a(norm(cam1)) * mask, norm(cam2) * mask
    rv1n, rv2n = a(norm(rv1)) * mask, norm(rv2) * mask
    terms = {
        "cls": (soft_margin(cam1) + soft_margin(cam2)) / 2,
        "rvmin": (min_pool(rv1) + min_pool(rv2)) / 2,
        "er": (cam1n[:, 1:] - cam2n[:, 1:]).abs().mean(),
        # each branch's PCM output regresses the OTHER branch's one-hot CAM
        "ecr": hardest(onehot_with_bg(cam2n) - rv1n) + hardest(onehot_with_bg(cam1n) - rv2n),
    }
    terms["loss"] = terms["cls"] + terms["rvmin"] + terms["er"] + terms["ecr"]
    return terms


def test_seam_loss_matches_an_independent_reference_composition():
    net = TinyNet()
    images = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(2, 20)
    labels[0, [2, 7]] = 1
    labels[1, 11] = 1
    out = seam_loss(net, images, labels, Rescale(0.3), LossConfig())
    expected = reference_terms(net, images, labels)
    assert set(out) == set(expected)
    for key in expected:
        torch.testing.assert_close(out[key], expected[key], msg=key)
    grads = torch.autograd.grad(out["loss"], list(net.parameters()))
    want = torch.autograd.grad(expected["loss"], list(net.parameters()))
    for got, ref in zip(grads, want, strict=True):
        torch.testing.assert_close(got, ref)
