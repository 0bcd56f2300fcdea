"""The one CAM normalisation against the three formulas it replaced, bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from seamlib.cam_ops import EPS, normalise_maps
from seamlib.losses import max_norm
from seamlib.pcm import pcm_input
from seamlib.stages.cams import normalise_cam


def old_max_norm(cam):
    """losses.max_norm before the shared helper."""
    cam = F.relu(cam)
    lo = cam.flatten(2).amin(-1)[..., None, None]
    hi = cam.flatten(2).amax(-1)[..., None, None]
    return F.relu(cam - lo - EPS) / (hi - lo + EPS)


def old_pcm_norm(cam):
    """The normalisation inside pcm.pcm_input before the shared helper."""
    n, c = cam.shape[:2]
    cam = F.relu(cam)
    peak = cam.flatten(2).amax(-1).view(n, c, 1, 1) + EPS
    return F.relu(cam - EPS) / peak


def old_pcm_input(cam):
    """pcm.pcm_input before the shared helper."""
    fg = old_pcm_norm(cam)[:, 1:]
    fg_max = fg.amax(1, keepdim=True)
    fg = torch.where(fg < fg_max, torch.zeros_like(fg), fg)
    return torch.cat([1 - fg_max, fg], dim=1)


def old_normalise_cam(cam):
    """cams.normalise_cam before the shared helper."""
    cam = cam.clamp(min=0)
    lo = cam.flatten(1).amin(1)[:, None, None]
    hi = cam.flatten(1).amax(1)[:, None, None]
    cam = torch.where(cam < lo + EPS, lo + EPS, cam)
    return (cam - lo - EPS) / (hi - lo + EPS)


def cams(seed: int) -> torch.Tensor:
    """Raw CAMs with negatives, -0.0, ties, a constant map and a large offset (min far from 0)."""
    g = torch.Generator().manual_seed(seed)
    cam = torch.randn(2, 21, 9, 7, generator=g) * 3
    cam[0, 3] = 0.7  # constant map
    cam[1, 4] = -0.0
    cam[1, 5] += 50.0  # min far from zero: lo + EPS rounds
    cam[0, 6, :2] = cam[0, 6].max()  # ties at the max
    return cam


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns, so -0.0 != 0.0 and NaN == NaN when patterns match."""
    return t.contiguous().view(torch.int32)


@pytest.mark.parametrize("seed", range(4))
def test_each_call_site_is_bit_identical_to_its_old_formula(seed):
    cam = cams(seed)
    assert torch.equal(bits(max_norm(cam)), bits(old_max_norm(cam)))
    assert torch.equal(bits(normalise_maps(cam, subtract_min=False)), bits(old_pcm_norm(cam)))
    assert torch.equal(bits(pcm_input(cam)), bits(old_pcm_input(cam)))
    for image in cam:  # inference normalises one image's (C, H, W) sum
        assert torch.equal(bits(normalise_cam(image)), bits(old_normalise_cam(image)))


def test_variants_differ_where_documented():
    cam = torch.tensor([[[[50.0, 60.0, 70.0]]]])
    plain, no_min = normalise_maps(cam), normalise_maps(cam, subtract_min=False)
    assert plain[0, 0, 0, 0] == 0 and no_min[0, 0, 0, 0] > 0.7  # min subtracted or not
    lifted = normalise_maps(cam, lift_low=True)
    assert lifted[..., 0].abs() < 1e-6 and torch.allclose(lifted, plain, atol=1e-6)
