"""Torch datasets over a VOC-format root: augmented classification crops for training,
multi-scale inputs for CAM inference and (image, mask) pairs for evaluation.

Seeding: every random draw (resize, flip, colour jitter, crop) comes from torch's global RNG.
A plain DataLoader over these datasets gives augmentation that depends on ``num_workers``
(each worker's RNG is seeded with ``base_seed + worker_id``). Training does not use it that
way: ``seamlib.trainer.SeededSamples`` seeds each sample from (seed, epoch, index), so the
trained weights do not depend on ``num_workers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from seamlib.config import DataConfig
from seamlib.data.lists import list_path
from seamlib.data.voc import (
    IMAGES,
    MEAN,
    SEG_CLASS,
    STD,
    read_list,
)
from seamlib.errors import InputError, MissingFile
from seamlib.formats import decode_image, load_label_png

# PIL RGB image -> float32 CHW tensor on the 0..1 scale, normalised with the ImageNet statistics.
normalise = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def resize_long(image: Image.Image, target: int) -> Image.Image:
    """Resize (bicubic) so the long side is ``target`` pixels, keeping the aspect ratio."""
    width, height = image.size
    scale = target / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)  # returns a copy when size is unchanged


class RandomResizeLong:
    """Resize a PIL image so its long side is an integer drawn uniformly from [low, high]."""

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high:
            raise InputError(f"resize_long range must satisfy 0 < low <= high, got ({low}, {high})")
        self.low, self.high = int(low), int(high)

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.low == self.high:  # deterministic: consume no randomness
            return resize_long(image, self.low)
        return resize_long(image, int(torch.randint(self.low, self.high + 1, ()).item()))


class RandomCropPad:
    """Crop a CHW tensor to size x size, placing it in a zero container where it is smaller.

    Per axis the crop offset (image larger than the crop) or the placement offset (image
    smaller) is uniform, as in the SEAM reference; with ``random=False`` both are centred.
    """

    def __init__(self, size: int, random: bool = True) -> None:
        self.size, self.random = int(size), random

    def _offsets(self, side: int) -> tuple[int, int]:
        """(offset into the image, offset into the container) along one axis."""
        space = side - self.size
        shift = int(torch.randint(abs(space) + 1, ()).item()) if self.random else abs(space) // 2
        return (shift, 0) if space > 0 else (0, shift)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, height, width = image.shape
        top, box_top = self._offsets(height)
        left, box_left = self._offsets(width)
        h, w = min(height, self.size), min(width, self.size)
        out = image.new_zeros((image.shape[0], self.size, self.size))
        out[:, box_top:box_top + h, box_left:box_left + w] = image[:, top:top + h, left:left + w]
        return out


def classification_transform(crop_size: int, resize_range: Sequence[int],
                             color_jitter: Sequence[float], train: bool = True) -> Any:
    """The SEAM reference augmentation (train) or a deterministic resize + centre pad (eval)."""
    if not train:
        return transforms.Compose([RandomResizeLong(crop_size, crop_size), normalise,
                                   RandomCropPad(crop_size, random=False)])
    return transforms.Compose([
        RandomResizeLong(*resize_range),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(*color_jitter),
        normalise,
        RandomCropPad(crop_size),
    ])


class VOCImages(Dataset):
    """The ids of one list under a VOC root, with image loading shared by the datasets below.

    ``cache_images`` decodes every image once, here, and keeps the RGB pixels in memory (about
    H x W x 3 bytes each: ~150 MB for the proxy's train_aug); DataLoader workers forked later
    share them. Decoding errors name the file either way.
    """

    def __init__(self, root: str | Path, list_name: str, cache_images: bool = False) -> None:
        self.root = Path(root)
        self.list_path = list_path(self.root, list_name)
        self.ids = read_list(self.list_path)
        self._cache: dict[str, np.ndarray] = {}
        if cache_images:
            self._cache = {i: np.asarray(self.load_image(i)) for i in self.ids}

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return self.root / IMAGES / f"{image_id}.jpg"

    def load_image(self, image_id: str) -> Image.Image:
        """The image of ``image_id`` as an RGB PIL image (from the cache when there is one)."""
        if image_id in self._cache:
            return Image.fromarray(self._cache[image_id])
        path = self.image_path(image_id)
        if not path.is_file():
            raise MissingFile(f"{path}: image of an id listed in {self.list_path} "
                                    f"does not exist")
        return decode_image(path, "RGB")

    def raw_image(self, index: int) -> np.ndarray:
        """The unnormalised (H, W, 3) uint8 RGB image of item ``index`` (for CRF and plots)."""
        return np.asarray(self.load_image(self.ids[index]))

    def _check_labels(self, labels: dict[str, np.ndarray]) -> None:
        """Fail early, naming the list, when some listed ids have no image-level label."""
        missing = [i for i in self.ids if i not in labels]
        if missing:
            raise InputError(f"{self.list_path}: {len(missing)} ids have no image-level label, "
                             f"e.g. {missing[:3]} (build them with lists.labels_for)")

    def _label(self, labels: dict[str, np.ndarray], image_id: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(labels[image_id], dtype=np.float32))


class ClassificationDataset(VOCImages):
    """(augmented crop 3 x crop x crop, multi-hot label (20,), id) for classifier training."""

    def __init__(self, root: str | Path, list_name: str, labels: dict[str, np.ndarray],
                 crop_size: int, resize_long: Sequence[int] = (448, 768),
                 color_jitter: Sequence[float] = (0.3, 0.3, 0.3, 0.1),
                 train: bool = True, cache_images: bool = False) -> None:
        super().__init__(root, list_name, cache_images)
        self._check_labels(labels)
        self.labels = labels
        self.transform = classification_transform(crop_size, resize_long, color_jitter, train)

    @classmethod
    def from_config(cls, data: DataConfig, labels: dict[str, np.ndarray],
                    list_name: str | None = None, train: bool = True) -> ClassificationDataset:
        """Build from a ``DataConfig`` (root, crop, augmentation, image cache; list defaults
        to train)."""
        (low, high), (a, b) = data.resize_long, data.resize_long_scale
        resize = (low, high) if (a, b) == (1.0, 1.0) else (round(low * a), round(high * b))
        return cls(data.root, list_name or data.train_list, labels, data.crop_size, resize,
                   data.color_jitter, train, data.cache_images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image_id = self.ids[index]
        image = self.transform(self.load_image(image_id))
        return image, self._label(self.labels, image_id), image_id


class MultiScaleDataset(VOCImages):
    """All scales of one image, each with its horizontal flip, for multi-scale CAM inference.

    Items differ in size, so load with ``batch_size=1`` and ``collate_fn=collate_list``.
    """

    def __init__(self, root: str | Path, list_name: str, labels: dict[str, np.ndarray],
                 scales: Sequence[float] = (0.5, 1.0, 1.5, 2.0)) -> None:
        super().__init__(root, list_name)
        self._check_labels(labels)
        self.labels, self.scales = labels, tuple(scales)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """{"id", "label", "size": (H, W), "images": [s0, s0 flipped, s1, s1 flipped, ...]}."""
        image_id = self.ids[index]
        image = self.load_image(image_id)
        width, height = image.size
        images = []
        for scale in self.scales:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            tensor = normalise(image.resize(size, Image.Resampling.BICUBIC))
            images += [tensor, tensor.flip(-1)]
        return {"id": image_id, "label": self._label(self.labels, image_id),
                "size": (height, width), "images": images}


def collate_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DataLoader collate for ``MultiScaleDataset``: keep the samples as a list, unstacked."""
    return batch


class SegmentationDataset(VOCImages):
    """(normalised image 3 x H x W, mask (H, W) int64 with 255 kept, id) for evaluation."""

    def __init__(self, root: str | Path, list_name: str, mask_dir: str = SEG_CLASS) -> None:
        super().__init__(root, list_name)
        self.mask_dir = mask_dir

    def mask_path(self, image_id: str) -> Path:
        return self.root / self.mask_dir / f"{image_id}.png"

    def load_mask(self, image_id: str) -> np.ndarray:
        """The (H, W) uint8 class-index mask of ``image_id`` (255 = void)."""
        return load_label_png(self.mask_path(image_id))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image_id = self.ids[index]
        image, mask = self.load_image(image_id), self.load_mask(image_id)
        if mask.shape != (image.height, image.width):
            raise InputError(f"{self.mask_path(image_id)}: mask is {mask.shape[1]}x"
                             f"{mask.shape[0]} but its image is {image.width}x{image.height}")
        return normalise(image), torch.from_numpy(mask.astype(np.int64)), image_id
