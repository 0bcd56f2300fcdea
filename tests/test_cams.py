"""Multi-scale CAM inference: normalisation, flip handling, label masking, files on disk."""

import numpy as np
import pytest
import torch

from seamlib.cams import infer_cams, iter_cams, load_cam, multiscale_cam, normalise_cam, save_cam
from seamlib.models.seam import SEAMOutput


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
    assert sorted(p.name for p in out.iterdir()) == ["x.npz", "y.npz"]
    stamp = (out / "x.npz").stat().st_mtime_ns
    (out / "y.npz").unlink()
    infer_cams(RampNet(), FakeData(), out, progress=False)
    assert (out / "y.npz").exists() and (out / "x.npz").stat().st_mtime_ns == stamp
    assert [i for i, _, _ in iter_cams(out, ["x", "y"])] == ["x", "y"]
    with pytest.raises(FileNotFoundError, match="z.npz"):
        list(iter_cams(out, ["z"]))
