"""Grad-CAM and Grad-CAM++ at conv6: Grad-CAM is the ReLU'd CAM up to a factor, Grad-CAM++ on
hand numbers, the wrapper under no_grad, and the cams stage running the wrapped network."""

import json
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seamlib.config import load_config
from seamlib.data.voc import SEG_LISTS, write_list
from seamlib.formats import load_cam
from seamlib.models import build_model
from seamlib.models.weights import save_released
from seamlib.stages.cams import MANIFEST, cams_stage
from study.gradcam import GradCAMNet, channel_weights


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(load_config("smoke").model).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 40, 48, generator=torch.Generator().manual_seed(1))


def max_norm(maps):
    return maps / maps.amax((2, 3), keepdim=True).clamp_min(1e-12)


# ------------------------------------------------------------------------ Grad-CAM is the CAM
def test_gradcam_is_the_relu_cam_over_h_w(net, x):
    """The score is the mean of the upsampled fc8 map: Grad-CAM = ReLU(fc8 CAM) / (h w)."""
    with torch.no_grad():
        cam = net.fc8(net.backbone(x)["conv6"]).relu()
    h, w = cam.shape[2:]
    maps = GradCAMNet(net, "gradcam").maps(x)
    assert cam[:, 1:].amax((2, 3)).gt(0).sum() > 30  # most of the 2 x 20 maps are not all 0
    torch.testing.assert_close(maps * (h * w), cam[:, 1:], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(max_norm(maps), max_norm(cam[:, 1:]), rtol=1e-4, atol=1e-5)
    # the wrapper's output is the ReLU'd CAM upsampled like SEAMNet's, over h w
    up = F.interpolate(cam, x.shape[2:], mode="bilinear", align_corners=True)
    out = GradCAMNet(net, "gradcam")(x).cam
    torch.testing.assert_close(out[:, 1:] * (h * w), up[:, 1:], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- Grad-CAM++ by hand
def test_gradcam_pp_weights_by_hand():
    # one image, two channels, three positions; sum_ab A: 4 and 2
    feats = torch.tensor([[[[1.0, 3.0, 0.0]], [[2.0, 0.0, 0.0]]]])
    grad = torch.tensor([[[[0.5, 0.25, 0.0]], [[-1.0, 0.5, 0.0]]]])
    # channel 0: alpha = .25 / (.5 + 4 * .125) = 1/4 and .0625 / (.125 + 4 * .015625) = 1/3,
    #   0/0 -> 0; w = 1/4 * .5 + 1/3 * .25 = 5/24
    # channel 1: g = -1: denominator 2 + 2 * -1 = 0 -> alpha 0; g = .5: .25 / (.5 + 2 * .125)
    #   = 1/3; w = 1/3 * .5 = 1/6
    weights = channel_weights(grad, feats, "gradcam++")
    torch.testing.assert_close(weights, torch.tensor([[5 / 24, 1 / 6]]))
    torch.testing.assert_close(channel_weights(grad, feats, "gradcam"),
                               torch.tensor([[0.75 / 3, -0.5 / 3]]))


class HandNet(nn.Module):
    """SEAMNet's head on fixed 2-channel, 1 x 2 conv6 features: background and two classes."""

    def __init__(self):
        super().__init__()
        self.feats = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # sum_ab A: 4 and 2
        self.dropout7 = nn.Identity()
        self.fc8 = nn.Conv2d(2, 3, 1, bias=False)
        self.fc8.weight.data = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 2.0]])[..., None, None]

    def backbone(self, x):
        return {"conv6": self.feats}


def test_gradcam_pp_by_hand_through_the_wrapper():
    """Input 1 x 2 = features: the upsampling is the identity, g = fc8 weight / 2 everywhere,
    alpha = 1 / (2 + S g) and w = 2 alpha ReLU(g)."""
    x = torch.zeros(1, 3, 1, 2)
    # class 1: g = (.5, -.5): w = (2 * .5 / (2 + 4 * .5), 0) = (1/4, 0) -> map (1/4, 3/4)
    # class 2: g = (.25, 1): w = (2 * .25 / (2 + 4 * .25), 2 * 1 / (2 + 2 * 1)) = (1/6, 1/2)
    #   -> map (1/6 + 1, 3/6)
    expected = torch.tensor([[[[0.0, 0.0]], [[0.25, 0.75]], [[7 / 6, 0.5]]]])
    torch.testing.assert_close(GradCAMNet(HandNet(), "gradcam++")(x).cam, expected)
    # Grad-CAM: w = g, the ReLU'd CAM over 2: class 1 ReLU(.5 * (1, 3) - .5 * (2, 0)) = (0, 1.5),
    # class 2 .25 * (1, 3) + 1 * (2, 0) = (2.25, .75)
    gradcam = torch.tensor([[[[0.0, 0.0]], [[0.0, 1.5]], [[2.25, 0.75]]]])
    torch.testing.assert_close(GradCAMNet(HandNet(), "gradcam")(x).cam, gradcam)


def test_gradcam_pp_is_not_the_cam(net, x):
    pp = max_norm(GradCAMNet(net, "gradcam++").maps(x))
    assert (pp - max_norm(GradCAMNet(net, "gradcam").maps(x))).abs().amax() > 0.1


# --------------------------------------------------------------------------- the wrapper
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_wrapper_under_no_grad_leaves_parameters_alone(net, x, method):
    assert any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        out = GradCAMNet(net, method)(x, with_pcm=False)
    assert out.cam_rv is None and out.cam.shape == (2, 21, 40, 48)
    assert not out.cam.requires_grad
    assert out.cam[:, 0].abs().sum() == 0 and out.cam.min() >= 0 and out.cam.amax() > 0
    assert all(p.grad is None for p in net.parameters())


def test_wrapper_refuses_other_methods_and_the_pcm(net, x):
    with pytest.raises(ValueError, match="method must be one of"):
        GradCAMNet(net, "cam")
    with pytest.raises(ValueError, match="with_pcm=False"):
        GradCAMNet(net, "gradcam")(x, with_pcm=True)


# ------------------------------------------------------------------------ the cams stage
@pytest.fixture
def trained(voc_root, tmp_path):
    """A smoke config on the fixture dataset, a one-image list, random-init weights saved as
    its trained checkpoint."""
    write_list(voc_root / SEG_LISTS / "one.txt", ["2007_000003"])
    cfg = load_config("smoke", {"train_cam": {"out_dir": str(tmp_path / "run")},
                                "data": {"cam_list": "one"}}, data_root=voc_root)
    save_released(build_model(cfg.model), tmp_path / "run" / "model.pth")
    return cfg


def test_cams_stage_runs_the_wrapped_network(trained, tmp_path):
    out = cams_stage(trained, out_dir=tmp_path / "pp", use_pcm=False, progress=False,
                     wrap=partial(GradCAMNet, method="gradcam++"))
    cams, classes = load_cam(out / "2007_000003.npz")
    assert classes.tolist() == [1] and cams.shape == (1, 24, 24) and cams.max() > 0.99
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["method"] == "gradcam++" and manifest["use_pcm"] is False
    cam = json.loads((cams_stage(trained, progress=False) / MANIFEST).read_text())
    assert sorted(cam) == ["model_sha256", "scales", "seconds", "use_pcm", "weights",
                           "weights_sha256"]
    assert cam["use_pcm"] is True
    raw, _ = load_cam(cams_stage(trained, use_pcm=False, progress=False) / "2007_000003.npz")
    assert (cams != raw).any()  # the wrapped network's map, not the CAM
