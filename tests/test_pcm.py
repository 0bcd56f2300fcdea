"""PCM: the vectorised module against a naive double loop, its input, and gradient flow."""

import torch

from seamlib.config import ModelConfig
from seamlib.models import build_model
from seamlib.pcm import PCM, pcm_input


def naive_pcm(cam: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """y[c, j] = sum_i cam[c, i] relu(cos(e_i, e_j)) / sum_i relu(cos(e_i, e_j)), pixel by pixel."""
    c, h, w = cam.shape
    e = emb.reshape(emb.shape[0], -1)
    cam = cam.reshape(c, -1)
    out = torch.zeros(c, h * w, dtype=torch.float64)
    for j in range(h * w):
        col = torch.zeros(h * w, dtype=torch.float64)
        for i in range(h * w):
            ni = e[:, i].norm() + 1e-5
            nj = e[:, j].norm() + 1e-5
            col[i] = max(0.0, float((e[:, i] / ni) @ (e[:, j] / nj)))
        out[:, j] = cam @ (col / (col.sum() + 1e-5))
    return out.reshape(c, h, w)


def test_pcm_matches_naive_double_loop():
    torch.manual_seed(0)
    pcm = PCM(in_channels=5, channels=4).double()
    cam = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    feats = torch.randn(1, 5, 4, 5, dtype=torch.float64)
    out = pcm(cam, feats)
    expected = naive_pcm(cam[0], pcm.f9(feats)[0].detach())
    torch.testing.assert_close(out[0].detach(), expected)


def test_pcm_input_background_and_non_max_suppression():
    cam = torch.tensor([[[[2.0, -1.0]], [[1.0, 4.0]], [[3.0, 2.0]]]])  # (1, 3, 1, 2)
    out = pcm_input(cam)
    fg1 = torch.tensor([1.0 - 1e-5, 4.0 - 1e-5]) / (4 + 1e-5)  # pixel 0, pixel 1
    fg2 = torch.tensor([3.0 - 1e-5, 2.0 - 1e-5]) / (3 + 1e-5)
    # pixel 0: class 2 wins; pixel 1: class 1 (4/4) beats class 2 (2/3)
    torch.testing.assert_close(out[0, 1, 0], torch.tensor([0.0, fg1[1]]))
    torch.testing.assert_close(out[0, 2, 0], torch.tensor([fg2[0], 0.0]))
    torch.testing.assert_close(out[0, 0, 0], 1 - torch.tensor([fg2[0], fg2[1].clamp(min=fg1[1])]))
    assert not out.requires_grad


def test_gradients_reach_f9_not_backbone_through_pcm():
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False))
    out = net(torch.randn(2, 3, 32, 32))
    out.cam_rv.sum().backward()
    assert net.pcm.f9.weight.grad.abs().sum() > 0
    assert net.f8_3.weight.grad.abs().sum() > 0 and net.f8_4.weight.grad.abs().sum() > 0
    assert net.fc8.weight.grad is None  # the PCM's CAM input carries no gradient
    assert all(p.grad is None for p in net.backbone.parameters())
