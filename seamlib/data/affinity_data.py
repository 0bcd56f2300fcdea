"""Training data of AffinityNet: augmented image crops with their CRF label map at stride 8.

Augmentation as in the authors' train_aff: (optional long-side resize), horizontal flip and
colour jitter, normalise, random crop with padding (image 0, label 255 = ignore). The label map
(``seamlib.stages.crf`` "affinity" PNGs: classes, 0 background, 255 unsure) is then sampled at the
centre of every 8x8 block. The authors average-pool the two CRF score maps over the block and
take the argmax; block-centre sampling of the combined map is the label-map equivalent.
Randomness comes from torch's global RNG, as in ``seamlib.data.datasets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from seamlib.data.datasets import RandomCropPad, VOCImages, normalise
from seamlib.data.voc import IGNORE, load_label_png
from seamlib.models.affinity import STRIDE


def resize_pair(image: Image.Image, label: Image.Image, long_side: int
                ) -> tuple[Image.Image, Image.Image]:
    """Resize image (bicubic) and label map (nearest) so the long side is ``long_side``."""
    width, height = image.size
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (image.resize(size, Image.Resampling.BICUBIC),
            label.resize(size, Image.Resampling.NEAREST))


def crop_pair(image: torch.Tensor, label: torch.Tensor, crop: RandomCropPad
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One random crop of a normalised image (3, H, W) and its label map (H, W): padding is 0
    in the image and 255 (ignore) in the label. The label rides along as 255 - label, so the
    crop's zero padding decodes to 255."""
    stacked = crop(torch.cat([image, (IGNORE - label.float())[None]]))
    return stacked[:3], (IGNORE - stacked[3]).round().long()


class AffinityDataset(VOCImages):
    """(augmented crop (3, c, c), label map at stride 8 (c/8, c/8) int64, id) of one list."""

    def __init__(self, root: str | Path, list_name: str, label_dir: str | Path, crop_size: int,
                 resize_long: Sequence[int] | None = None,
                 color_jitter: Sequence[float] = (0.3, 0.3, 0.3, 0.1)) -> None:
        super().__init__(root, list_name)
        if crop_size % STRIDE:
            raise ValueError(f"affinity.crop_size must be a multiple of {STRIDE}, got {crop_size}")
        self.label_dir = Path(label_dir)
        missing = [i for i in self.ids if not self.label_path(i).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.label_dir}: no label map for {len(missing)} ids of "
                                    f"{self.list_path}, e.g. {missing[:3]}; run the crf stage "
                                    "(kind 'affinity') first")
        self.resize_long = tuple(resize_long) if resize_long else None
        self.jitter = transforms.ColorJitter(*color_jitter)
        self.crop = RandomCropPad(crop_size)

    def label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}.png"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image_id = self.ids[index]
        image = self.load_image(image_id)
        label = Image.fromarray(load_label_png(self.label_path(image_id)))
        if label.size != image.size:
            raise ValueError(f"{self.label_path(image_id)}: label map is {label.size[0]}x"
                             f"{label.size[1]} but its image is {image.width}x{image.height}")
        if self.resize_long:
            low, high = self.resize_long
            image, label = resize_pair(image, label, int(torch.randint(low, high + 1, ())))
        if torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            label = label.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = normalise(self.jitter(image))
        image, label = crop_pair(image, torch.from_numpy(np.asarray(label).astype(np.int64)),
                                 self.crop)
        return image, label[STRIDE // 2::STRIDE, STRIDE // 2::STRIDE].contiguous(), image_id
