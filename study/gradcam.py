"""Grad-CAM and Grad-CAM++ of a trained SEAMNet: the paper's baselines to SEAM's CAMs, which
the study compares (notebook 04); ``GradCAMNet`` wraps the network for the cams stage.

Both are taken at conv6 (the features fc8 reads), at inference only. The class score is the
one training uses (``losses.classification_loss``): the mean of the fc8 map upsampled
(bilinear, align_corners) to the input size, linear in conv6. Its gradient g_kij at conv6 is
``fc8.weight[c, k]`` times the upsampling's weight u_ij of each position, and the u_ij average
1/(h w): so Grad-CAM at conv6 is exactly ReLU(fc8 CAM) / (h w), the ReLU'd CAM up to a
positive factor, and after the CAM normalisation it is the CAM (per pass; the cams stage sums
passes after the ReLU, each with its 1/(h w)). Grad-CAM++ is not: it keeps only channels of
positive fc8 weight, each weighed by sum_ij g_kij / (2 + S_k g_kij), which shrinks as the
channel's total activation S_k grows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.errors import InputError
from seamlib.models.seam import SEAMNet, SEAMOutput

METHODS = ("gradcam", "gradcam++")


def channel_weights(grad: torch.Tensor, feats: torch.Tensor, method: str) -> torch.Tensor:
    """(N, K) channel weights from a class score's gradient at ``feats`` (both N, K, h, w).

    ``method`` "gradcam": the gradient's spatial mean. "gradcam++" (exp of the score, less its
    positive factor exp(score)): sum_ij alpha ReLU(g), alpha = g^2 / (2 g^2 + sum_ab(A_ab) g^3),
    0 where that denominator is 0."""
    if method == "gradcam":
        return grad.mean((2, 3))
    g2 = grad.square()
    denom = 2 * g2 + feats.sum((2, 3), keepdim=True) * g2 * grad
    alpha = torch.where(denom != 0, g2 / denom, 0.0)
    return (alpha * grad.relu()).sum((2, 3))


class GradCAMNet(nn.Module):
    """A trained SEAMNet whose CAM is replaced by Grad-CAM(++), so the cams stage can run it.

    Meant for eval mode (as the stage sets it): in train mode dropout7 would drop channels."""

    def __init__(self, net: SEAMNet, method: str = "gradcam") -> None:
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        super().__init__()
        self.net = net
        self.method = method

    def scores(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, C - 1) foreground scores as training computes them: mean of the upsampled fc8."""
        cam = self.net.fc8(self.net.dropout7(feats))
        cam = F.interpolate(cam, size, mode="bilinear", align_corners=True)
        return cam[:, 1:].mean((2, 3))

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C - 1, h, w) foreground maps at conv6; the backbone runs once without a graph.

        Only the head is differentiated, for conv6 alone (no parameter's ``.grad`` changes),
        one class at a time (20 at once would hold 20 gradients of conv6's size). Works inside
        ``torch.no_grad()``, not ``torch.inference_mode()`` (its tensors take no gradient)."""
        with torch.no_grad():
            feats = self.net.backbone(x)["conv6"]
        with torch.enable_grad():
            feats = feats.detach().requires_grad_()
            scores = self.scores(feats, x.shape[2:])
            grads = (torch.autograd.grad(scores[:, c].sum(), feats, retain_graph=True)[0]
                     for c in range(scores.shape[1]))
            weights = torch.stack([channel_weights(g, feats.detach(), self.method)
                                   for g in grads], dim=1)
        return torch.einsum("nck,nkhw->nchw", weights, feats.detach()).relu()

    def forward(self, x: torch.Tensor, with_pcm: bool = False) -> SEAMOutput:
        """(N, C, H, W) maps upsampled like SEAMNet's CAM, background 0; there is no PCM."""
        if with_pcm:
            raise InputError(f"{self.method} has no PCM output: call it with with_pcm=False")
        maps = self.maps(x)
        maps = torch.cat([torch.zeros_like(maps[:, :1]), maps], dim=1)
        return SEAMOutput(F.interpolate(maps, x.shape[2:], mode="bilinear", align_corners=True),
                          None)
