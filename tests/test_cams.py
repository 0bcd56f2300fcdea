"""Multi-scale CAM inference: normalisation, flip handling, label masking, batching against
one pass at a time, the manifest that ties a folder to its network, files on disk."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seamlib.config import ModelConfig
from seamlib.errors import InputError
from seamlib.formats import iter_cams, load_cam, save_cam
from seamlib.models import build_model
from seamlib.models.seam import SEAMOutput
from seamlib.stages.cams import (
    MANIFEST,
    infer_cams,
    multiscale_cam,
    multiscale_cams,
    normalise_cam,
)


class RampNet(torch.nn.Module):
    """A stand-in network whose CAM for class c is c times the image's red channel."""

    def forward(self, x, with_pcm=True):
        cam = torch.arange(21.0)[None, :, None, None] * x[:, :1]
        return SEAMOutput(cam, cam.clone() if with_pcm else None)


def test_normalise_cam_hand_values():
    cam = torch.tensor([[[-1.0, 0.0, 2.0, 4.0]]])
    out = normalise_cam(cam)
    expected = torch.tensor([0.0, 0.0, 2 - 1e-5, 4 - 1e-5]) / (4 + 1e-5)
    torch.testing.assert_close(out.flatten(), expected)


def test_flipped_passes_are_unflipped_and_labels_mask():
    ramp = torch.linspace(0, 1, 8).expand(1, 4, 8).repeat(3, 1, 1)  # rises left to right
    images = [ramp, ramp.flip(-1)]  # one scale and its flip, as MultiScaleDataset gives
    label = torch.zeros(20)
    label[[2, 5]] = 1
    cam = multiscale_cam(RampNet(), images, label, (4, 8))
    assert cam.shape == (20, 4, 8)
    assert cam[0].abs().sum() == 0 and cam[2].abs().sum() > 0  # class 1 not in label
    # un-flipped sum keeps the ramp rising left to right, normalised to [0, 1)
    assert (cam[5, 0].diff() > 0).all() and cam[5].max() < 1 and cam[5].min() == 0


def test_save_keeps_present_classes(tmp_path):
    cam = torch.rand(20, 3, 4)
    label = torch.zeros(20)
    label[[0, 14]] = 1
    save_cam(tmp_path / "a.npz", cam, label)
    cams, classes = load_cam(tmp_path / "a.npz")
    assert classes.tolist() == [1, 15]
    np.testing.assert_allclose(cams, cam[[0, 14]].numpy(), atol=1e-3)


def test_a_truncated_cam_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "a.npz"
    save_cam(path, torch.rand(20, 3, 4), torch.ones(20))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"a\.npz: cannot read these CAMs"):
        load_cam(path)
    path.write_bytes(np.random.default_rng(0).bytes(256))  # not an npz at all
    with pytest.raises(InputError, match=r"cannot read these CAMs \(ValueError: [^.]*\); make "
                       r"them again$") as err:
        load_cam(path)
    assert "allow_pickle" not in str(err.value)  # numpy's advice is not for a corrupt file


class FakeData:
    ids = ["x", "y"]

    def __getitem__(self, i):
        label = torch.zeros(20)
        label[i] = 1
        image = torch.rand(3, 4, 4)
        return {"id": self.ids[i], "label": label, "size": (4, 4),
                "images": [image, image.flip(-1)]}


def test_infer_cams_writes_every_image_and_resumes(tmp_path):
    out = infer_cams(RampNet(), FakeData(), tmp_path / "cams", progress=False)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "x.npz", "y.npz"]
    stamp = (out / "x.npz").stat().st_mtime_ns
    (out / "y.npz").unlink()
    infer_cams(RampNet(), FakeData(), out, progress=False)
    assert (out / "y.npz").exists() and (out / "x.npz").stat().st_mtime_ns == stamp
    assert [i for i, _, _ in iter_cams(out, ["x", "y"])] == ["x", "y"]
    with pytest.raises(FileNotFoundError, match="z.npz"):
        list(iter_cams(out, ["z"]))


def test_inference_time_is_summed_over_resumes_and_kept_when_reused(tmp_path, monkeypatch):
    clock = iter([10.0, 12.5, 20.0, 21.0, 30.0])  # start, end; start, end; start (no images)
    monkeypatch.setattr("seamlib.stages.cams.time",
                        SimpleNamespace(perf_counter=lambda: next(clock)))
    def seconds(out):
        return json.loads((out / MANIFEST).read_text())["seconds"]

    out = infer_cams(RampNet(), FakeData(), tmp_path / "cams", progress=False)
    assert seconds(out) == 2.5
    (out / "y.npz").unlink()
    infer_cams(RampNet(), FakeData(), out, progress=False)
    assert seconds(out) == 3.5
    infer_cams(RampNet(), FakeData(), out, progress=False)  # nothing to do: time unchanged
    assert seconds(out) == 3.5 and next(clock, None) is None


# ------------------------------------------------------------- batching vs one pass at a time
@torch.no_grad()
def reference_cam(net, images, label, size, use_pcm=True):
    """The plain loop the stage had before batching: one pass at a time, all 20 classes."""
    total = torch.zeros(len(label), *size)
    for i, image in enumerate(images):
        out = net(image[None], with_pcm=use_pcm)
        cam = (out.cam_rv if use_pcm else out.cam)[:, 1:]
        cam = F.interpolate(cam, size, mode="bilinear", align_corners=False)[0]
        cam = cam * label[:, None, None]
        total += cam.flip(-1) if i % 2 else cam
    return normalise_cam(total)


def sample(seed, height, width, classes, scales=(0.5, 1.0, 1.5)):
    """A MultiScaleDataset-like item of a random image."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(3, height, width, generator=g)
    images = []
    for s in scales:
        x = F.interpolate(image[None], scale_factor=s, mode="bilinear")[0]
        images += [x, x.flip(-1)]
    label = torch.zeros(20)
    label[list(classes)] = 1
    return {"id": f"i{seed}", "images": images, "label": label, "size": (height, width)}


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False)).eval()


# two images of equal size (their passes share batches), one of another size, one unlabelled
SAMPLES = [sample(0, 40, 48, [3]), sample(1, 40, 48, [0, 14]), sample(2, 36, 52, [7, 8, 19]),
           sample(3, 40, 48, [])]
SMALL = (0.5, 1.0)


@pytest.mark.parametrize("use_pcm", [True, False])
def test_batching_keeps_order_flips_and_masks_exactly(use_pcm):
    """With a batch-size-independent network the batched stage is the old loop bit for bit."""
    batched = multiscale_cams(RampNet(), SAMPLES, use_pcm)
    for s, cam in zip(SAMPLES, batched, strict=True):
        ref = reference_cam(RampNet(), s["images"], s["label"], s["size"], use_pcm)
        assert torch.equal(cam, ref)
    assert batched[3].abs().sum() == 0 and batched[0][[0, 1, 4]].abs().sum() == 0
    assert batched[1][[0, 14]].amax((1, 2)).gt(0.99).all()


@pytest.mark.parametrize("use_pcm", [True, False])
def test_batched_matches_one_pass_at_a_time_on_seam(tiny_net, use_pcm):
    """On CPU, oneDNN convolutions and the upsampling round differently for another batch
    size: measured at most 1.6e-6 on these maps in [0, 1); one pass at a time is exact."""
    samples = [sample(0, 24, 32, [3], SMALL), sample(1, 24, 32, [0, 14], SMALL),
               sample(2, 20, 28, [7, 8], SMALL)]
    batched = multiscale_cams(tiny_net, samples, use_pcm)
    single = multiscale_cams(tiny_net, samples, use_pcm, max_pixels=0)
    for s, cam, one in zip(samples, batched, single, strict=True):
        ref = reference_cam(tiny_net, s["images"], s["label"], s["size"], use_pcm)
        assert torch.equal(one, ref)
        torch.testing.assert_close(cam, ref, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ the manifest
class Scaled(RampNet):
    """RampNet times a learnable factor, so two instances can differ in their weights."""

    def __init__(self, factor=1.0):
        super().__init__()
        self.factor = torch.nn.Parameter(torch.tensor(factor))

    def forward(self, x, with_pcm=True):
        cam, rv = super().forward(x, with_pcm)
        return SEAMOutput(cam * self.factor, None if rv is None else rv * self.factor)


def test_manifest_ties_folder_to_network_and_settings(tmp_path):
    out = infer_cams(Scaled(1.0), FakeData(), tmp_path / "cams", progress=False, device="cpu")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["use_pcm"] is True and len(manifest["model_sha256"]) == 64
    infer_cams(Scaled(1.0), FakeData(), out, progress=False)  # same network: fine
    with pytest.raises(InputError, match="model_sha256 was .*delete that one"):
        infer_cams(Scaled(2.0), FakeData(), out, progress=False)
    with pytest.raises(InputError, match="use_pcm"):
        infer_cams(Scaled(1.0), FakeData(), out, use_pcm=False, progress=False)
    (out / MANIFEST).unlink()  # CAMs whose network is not recorded
    with pytest.raises(InputError, match="holds files seam did not make"):
        infer_cams(Scaled(1.0), FakeData(), out, progress=False)


def test_folder_without_manifest_and_weights_file(tmp_path):
    legacy = tmp_path / "legacy"
    save_cam(legacy / "x.npz", torch.rand(20, 4, 4), torch.ones(20))
    with pytest.raises(ValueError, match="no manifest"):
        infer_cams(Scaled(), FakeData(), legacy, progress=False)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    out = infer_cams(Scaled(), FakeData(), tmp_path / "cams", progress=False, weights=weights)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["weights"] == str(weights) and len(manifest["weights_sha256"]) == 64


def test_device_setting_is_resolved():
    with pytest.raises(ValueError, match="device"):
        infer_cams(Scaled(), FakeData(), "unused", progress=False, device="gpu:x")
