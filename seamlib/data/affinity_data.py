"""Training data of AffinityNet: augmented image crops with their labels at stride 8.

As the authors' train_aff and ``VOC12AffDataset``: an image's two CRF score maps (the
``crf`` stage's "affinity" npz, ``seamlib.formats.load_score_maps``: la, low alpha, confident
foreground; ha, high alpha, confident background) are stacked as channels and augmented with
the image: optional long-side resize (image bicubic, scores bilinear), horizontal flip, colour
jitter and normalisation of the image, random crop padded with 0 in image and scores. The scores
are then average-pooled to stride 8 and the labels derived (:func:`affinity_labels`).
Randomness comes from torch's global RNG, as in ``seamlib.data.datasets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from seamlib.data.datasets import RandomCropPad, VOCImages, normalise
from seamlib.data.voc import IGNORE
from seamlib.errors import InputError, MissingFile
from seamlib.formats import load_score_maps
from seamlib.models.affinity import STRIDE

NO_SCORE = 1e-5  # a pooled pixel with every score below this has no score (crop padding)


def resize_pair(image: Image.Image, scores: torch.Tensor, long_side: int
                ) -> tuple[Image.Image, torch.Tensor]:
    """Resize image (bicubic) and score maps (C, H, W) (bilinear) so the long side is
    ``long_side``."""
    width, height = image.size
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scores = F.interpolate(scores[None], size=size[::-1], mode="bilinear", align_corners=False,
                           antialias=True)[0]
    return image.resize(size, Image.Resampling.BICUBIC), scores


def affinity_labels(scores: torch.Tensor, classes: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Labels (H/8, W/8) int64 of full-resolution score maps [la; ha] (2(K+1), H, W), each
    over [background, classes], as the authors' ``VOC12AffDataset``: average-pool to stride 8;
    the la argmax class, 255 (unsure) where it is background; 0 where the ha argmax is
    background; 255 where no score is left (every pooled score below ``NO_SCORE``)."""
    pooled = F.avg_pool2d(scores[None], STRIDE)[0]
    la, ha = pooled.chunk(2)
    lut = torch.as_tensor(np.concatenate([[0], np.asarray(classes)]), dtype=torch.long)
    label = lut[la.argmax(0)]
    label[label == 0] = IGNORE
    label[ha.argmax(0) == 0] = 0
    label[pooled.amax(0) < NO_SCORE] = IGNORE
    return label


class AffinityDataset(VOCImages):
    """(augmented crop (3, c, c), labels at stride 8 (c/8, c/8) int64, id) of one list, from
    the CRF score maps in ``score_dir``."""

    def __init__(self, root: str | Path, list_name: str, score_dir: str | Path, crop_size: int,
                 resize_long: Sequence[int] | None = None,
                 color_jitter: Sequence[float] = (0.3, 0.3, 0.3, 0.1)) -> None:
        super().__init__(root, list_name)
        if crop_size % STRIDE:
            raise InputError(f"affinity.crop_size must be a multiple of {STRIDE}, got {crop_size}")
        self.score_dir = Path(score_dir)
        missing = [i for i in self.ids if not self.score_path(i).is_file()]
        if missing:
            raise MissingFile(f"{self.score_dir}: no CRF score maps (.npz) for "
                                    f"{len(missing)} ids of {self.list_path}, e.g. "
                                    f"{missing[:3]}; run the crf stage (kind 'affinity') first")
        self.resize_long = tuple(resize_long) if resize_long else None
        self.jitter = transforms.ColorJitter(*color_jitter)
        self.crop = RandomCropPad(crop_size)

    def score_path(self, image_id: str) -> Path:
        return self.score_dir / f"{image_id}.npz"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image_id = self.ids[index]
        image = self.load_image(image_id)
        la, ha, classes = load_score_maps(self.score_path(image_id))
        if la.shape[1:] != (image.height, image.width):
            raise InputError(f"{self.score_path(image_id)}: score maps are {la.shape[2]}x"
                             f"{la.shape[1]} but its image is {image.width}x{image.height}")
        scores = torch.from_numpy(np.concatenate([la, ha]))
        if self.resize_long:
            low, high = self.resize_long
            image, scores = resize_pair(image, scores, int(torch.randint(low, high + 1, ())))
        if torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            scores = scores.flip(-1)
        image = normalise(self.jitter(image))
        stacked = self.crop(torch.cat([image, scores]))  # zero padding: no score there
        return stacked[:3], affinity_labels(stacked[3:], classes), image_id
