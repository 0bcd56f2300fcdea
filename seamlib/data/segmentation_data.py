"""Data of the segmentation stage: augmented (image, pseudo-label) crops for retraining and
plain images for inference.

Training augmentation follows the authors' retraining code, in its order: a random HSV shift,
a horizontal flip, a random rescale (bicubic image, nearest label), ImageNet normalisation, and
a random crop where the image is padded with 0 and the label with 255 (void, ignored by the
loss). Every random draw comes from torch's global RNG, as in ``datasets.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from seamlib.config import SegmentationConfig
from seamlib.data.datasets import RandomCropPad, VOCImages, normalise
from seamlib.data.voc import IGNORE, NUM_CLASSES
from seamlib.errors import InputError, MissingFile
from seamlib.formats import load_label_png

OPENCV_HUE_RANGE = 180  # the reference's hue shift is in OpenCV units; PIL's hue spans 256


def randint(low: int, high: int) -> int:
    """A uniform integer in [low, high] from torch's global RNG."""
    return int(torch.randint(low, high + 1, ()).item())


def hsv_shift(image: Image.Image, dh: int, ds: int, dv: int) -> Image.Image:
    """Shift hue (cyclic, OpenCV units of 180 per turn), saturation and value (clipped)."""
    hsv = np.asarray(image.convert("HSV")).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + round(dh * 256 / OPENCV_HUE_RANGE)) % 256
    hsv[..., 1:] = np.clip(hsv[..., 1:] + np.array([ds, dv]), 0, 255)
    return Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")


def augment_pair(image: Image.Image, label: np.ndarray,
                 seg: SegmentationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One reference training sample: (3, crop, crop) float image, (crop, crop) int64 label."""
    if any(seg.hsv_jitter):
        image = hsv_shift(image, *(randint(-r, r) for r in seg.hsv_jitter))
    label_image = Image.fromarray(label, mode="L")
    if float(torch.rand(())) < seg.flip_prob:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        label_image = label_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    low, high = seg.scale_range
    if (low, high) != (1, 1):
        scale = low + float(torch.rand(())) * (high - low)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        label_image = label_image.resize(size, Image.Resampling.NEAREST)
    target = torch.from_numpy(np.asarray(label_image, dtype=np.float32) - IGNORE)
    # One crop for both: the label rides as a 4th channel offset by -255, so the container's
    # zero padding reads back as void.
    crop = RandomCropPad(seg.crop_size)(torch.cat([normalise(image), target[None]]))
    return crop[:3], (crop[3] + IGNORE).round().long()


class PseudoLabelDataset(VOCImages):
    """(augmented image, label) crops of a list, labels read from ``label_dir/<id>.png``."""

    def __init__(self, root: str | Path, list_name: str, label_dir: str | Path,
                 seg: SegmentationConfig, num_classes: int = NUM_CLASSES) -> None:
        super().__init__(root, list_name)
        self.label_dir, self.seg, self.num_classes = Path(label_dir), seg, num_classes
        missing = [i for i in self.ids if not self.label_path(i).is_file()]
        if missing:
            raise MissingFile(f"{self.label_dir}: {len(missing)} of the {len(self.ids)} "
                                    f"ids of {self.list_path} have no label PNG, e.g. "
                                    f"{missing[:3]}; run the pseudo-label stage first")

    def label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}.png"

    def load_label(self, image_id: str, size: tuple[int, int]) -> np.ndarray:
        """The (H, W) uint8 label of ``image_id``, checked against the image size (W, H) and
        the class range (0 .. num_classes-1, or 255)."""
        path = self.label_path(image_id)
        label = load_label_png(path)
        if label.shape != (size[1], size[0]):
            raise InputError(f"{path}: label is {label.shape[1]}x{label.shape[0]} but its image "
                             f"is {size[0]}x{size[1]}")
        bad = np.setdiff1d(np.unique(label), [*range(self.num_classes), IGNORE])
        if bad.size:
            raise InputError(f"{path}: values {bad.tolist()} are not class indices "
                             f"0..{self.num_classes - 1} or {IGNORE}")
        return label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.load_image(self.ids[index])
        label = self.load_label(self.ids[index], image.size)
        return augment_pair(image, label, self.seg)


class RawImages(VOCImages):
    """(id, (H, W, 3) uint8 RGB image) of a list's items, for inference."""

    def __getitem__(self, index: int) -> tuple[str, np.ndarray]:
        return self.ids[index], np.array(self.load_image(self.ids[index]))  # writable
