"""Classification, multi-scale and segmentation datasets over a tiny VOC-format root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from seamlib.config import DataConfig
from seamlib.data.datasets import (
    ClassificationDataset,
    MultiScaleDataset,
    RandomCropPad,
    RandomResizeLong,
    SegmentationDataset,
    VOCImages,
    collate_list,
    normalise,
    resize_long,
)
from seamlib.data.lists import labels_for, labels_from_masks
from seamlib.data.voc import IGNORE, IMAGES, SEG_CLASS
from seamlib.errors import InputError
from seamlib.formats import save_label_png

NO_JITTER = (0.0, 0.0, 0.0, 0.0)


@pytest.fixture
def labels(voc_root: Path, tiny) -> dict[str, np.ndarray]:
    return labels_from_masks(voc_root, tiny.images)


def rgb(root: Path, image_id: str) -> Image.Image:
    with Image.open(root / IMAGES / f"{image_id}.jpg") as image:
        return image.convert("RGB")


# ------------------------------------------------------------------------------ transforms

def test_random_crop_pad_places_and_crops():
    image = torch.ones(2, 5, 7)  # height 5 < 6 is placed, width 7 > 6 is cropped
    for seed in range(5):
        torch.manual_seed(seed)
        out = RandomCropPad(6)(image)
        assert out.shape == (2, 6, 6) and out.sum() == 2 * 5 * 6
        assert ((out == 0) | (out == 1)).all()
    centred = RandomCropPad(9, random=False)(torch.ones(1, 5, 7))
    assert centred[0, 2:7, 1:8].eq(1).all() and centred.sum() == 35


def test_random_resize_long_range_and_aspect():
    image = Image.new("RGB", (40, 30))
    for seed in range(10):
        torch.manual_seed(seed)
        out = RandomResizeLong(20, 28)(image)
        assert 20 <= out.width <= 28 and out.height == round(out.width * 0.75)
    assert resize_long(Image.new("RGB", (30, 60)), 20).size == (10, 20)


# --------------------------------------------------------------------------- classification

@pytest.mark.parametrize("crop, resize", [(64, (30, 40)), (16, (40, 48))])
def test_classification_shapes_and_dtypes(voc_root: Path, labels, crop, resize):
    ds = ClassificationDataset(voc_root, "train_aug", labels, crop, resize, (0.3, 0.3, 0.3, 0.1))
    assert len(ds) == 4
    for index in range(len(ds)):
        image, label, image_id = ds[index]
        assert image.shape == (3, crop, crop) and image.dtype == torch.float32
        assert label.shape == (20,) and label.dtype == torch.float32
        np.testing.assert_array_equal(label.numpy(), labels[image_id])
        if crop < resize[0]:  # larger than the crop: no padding anywhere
            assert (image != 0).all()


def test_classification_padding_is_zero_outside_placed_image(voc_root: Path, labels):
    # 2007_000001 is 40x30 (WxH); long side 20 gives 20x15, placed inside a 32x32 container.
    ds = ClassificationDataset(voc_root, "train", labels, 32, (20, 20), NO_JITTER)
    placed = normalise(resize_long(rgb(voc_root, "2007_000001"), 20))
    offsets = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image = ds[0][0]
        rows = torch.nonzero((image != 0).any(0).any(1)).flatten()
        cols = torch.nonzero((image != 0).any(0).any(0)).flatten()
        top, left = int(rows[0]), int(cols[0])
        window = image[:, top:top + 15, left:left + 20].clone()
        assert torch.equal(window, placed) or torch.equal(window, placed.flip(-1))
        image[:, top:top + 15, left:left + 20] = 0
        assert (image == 0).all()  # exactly zero everywhere outside the placed image
        offsets.add((top, left))
    assert len(offsets) > 1  # the placement offset is random


def test_classification_flip_and_seeding(voc_root: Path, labels):
    # 2007_000005 is 40x40: resize to 40 and crop 40 leave it intact, only flipped or not.
    ds = ClassificationDataset(voc_root, "val", labels, 40, (40, 40), NO_JITTER)
    base = normalise(rgb(voc_root, "2007_000005"))
    flipped = []
    for seed in range(16):
        torch.manual_seed(seed)
        image = ds[1][0]
        assert torch.equal(image, base) or torch.equal(image, base.flip(-1))
        flipped.append(not torch.equal(image, base))
    assert any(flipped) and not all(flipped)


def test_classification_same_seed_same_sample(voc_root: Path, labels):
    ds = ClassificationDataset(voc_root, "train", labels, 24, (20, 40))
    torch.manual_seed(7)
    first = ds[1][0]
    torch.manual_seed(7)
    assert torch.equal(ds[1][0], first)
    torch.manual_seed(8)
    assert not torch.equal(ds[1][0], first)


def test_classification_dataloader_generator_seeds_workers(voc_root: Path, labels):
    ds = ClassificationDataset(voc_root, "train_aug", labels, 24, (20, 40))

    def batches(seed: int) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=1,
                            generator=torch.Generator().manual_seed(seed))
        return [images for images, _, _ in loader]

    first, again = batches(0), batches(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_classification_eval_is_deterministic_and_centred(voc_root: Path, labels):
    ds = ClassificationDataset(voc_root, "train", labels, 32, (20, 40), train=False)
    image = ds[0][0]  # 40x30 resized to 32x24, centred: rows 4..28 hold the image
    assert torch.equal(image, ds[0][0])
    assert torch.equal(image[:, 4:28], normalise(resize_long(rgb(voc_root, "2007_000001"), 32)))
    assert (image[:, :4] == 0).all() and (image[:, 28:] == 0).all()


def test_classification_from_config_and_missing_labels(voc_root: Path, labels):
    data = DataConfig(root=str(voc_root), crop_size=16, resize_long=(16, 24))
    image, _, _ = ClassificationDataset.from_config(data, labels, "train")[0]
    assert image.shape == (3, 16, 16)
    with pytest.raises(ValueError, match=r"train\.txt.*no image-level label"):
        ClassificationDataset(voc_root, "train", {}, 16, (16, 24), NO_JITTER)


# ------------------------------------------------------------------------------ multi-scale

def test_multiscale_sizes_order_and_flips(voc_root: Path, labels):
    scales = (0.5, 1.0, 1.5, 0.75)
    ds = MultiScaleDataset(voc_root, "train", labels, scales)
    item = ds[0]  # 2007_000001: H=30, W=40
    assert item["id"] == "2007_000001" and item["size"] == (30, 40)
    np.testing.assert_array_equal(item["label"].numpy(), labels["2007_000001"])
    assert len(item["images"]) == 2 * len(scales)
    for k, scale in enumerate(scales):
        plain, flipped = item["images"][2 * k], item["images"][2 * k + 1]
        assert plain.shape == (3, round(30 * scale), round(40 * scale))
        assert plain.dtype == torch.float32
        assert torch.equal(flipped, plain.flip(-1))
    assert torch.equal(item["images"][2], normalise(rgb(voc_root, "2007_000001")))


def test_multiscale_collate_list(voc_root: Path, labels):
    loader = DataLoader(MultiScaleDataset(voc_root, "val", labels, (1.0,)), batch_size=2,
                        collate_fn=collate_list)
    batch = next(iter(loader))
    assert [item["id"] for item in batch] == ["2007_000004", "2007_000005"]
    assert batch[0]["images"][0].shape == (3, 48, 64)


# ----------------------------------------------------------------------------- segmentation

def test_segmentation_keeps_void_and_raw_image(voc_root: Path, tiny):
    ds = SegmentationDataset(voc_root, "val")
    image, mask, image_id = ds[0]  # 2007_000004: 64x48 (WxH)
    assert image_id == "2007_000004" and image.shape == (3, 48, 64)
    assert mask.dtype == torch.int64 and mask.shape == (48, 64)
    assert (mask == IGNORE).any()
    np.testing.assert_array_equal(mask.numpy(), tiny.mask(48, 64, (3, 15, 20)))
    raw = ds.raw_image(0)
    assert raw.dtype == np.uint8 and raw.shape == (48, 64, 3)
    np.testing.assert_array_equal(raw, np.asarray(rgb(voc_root, "2007_000004")))


def test_segmentation_mask_size_mismatch_names_file(voc_root: Path):
    save_label_png(voc_root / SEG_CLASS / "2007_000005.png", np.zeros((40, 41), np.uint8))
    with pytest.raises(ValueError, match=r"2007_000005\.png: mask is 41x40 but its image is 40x40"):
        SegmentationDataset(voc_root, "val")[1]


# ---------------------------------------------------------------------------- decoded cache

def test_cached_images_give_the_same_samples_and_decode_once(voc_root: Path, labels):
    plain = ClassificationDataset(voc_root, "train_aug", labels, 24, (20, 40))
    data = DataConfig(root=str(voc_root), train_list="train_aug", crop_size=24,
                      resize_long=(20, 40), cache_images=True)
    cached = ClassificationDataset.from_config(data, labels)
    for image_id in cached.ids:  # decoded at construction: the files are no longer read
        (voc_root / IMAGES / f"{image_id}.jpg").unlink()
    for index in range(len(cached)):
        torch.manual_seed(index)
        image, label, image_id = cached[index]
        assert image_id == cached.ids[index]
        torch.manual_seed(index)
        with pytest.raises(FileNotFoundError, match=f"{image_id}.jpg"):
            plain[index]


def test_cache_matches_decoding_each_time(voc_root: Path, labels):
    plain = ClassificationDataset(voc_root, "train_aug", labels, 24, (20, 40))
    cached = ClassificationDataset(voc_root, "train_aug", labels, 24, (20, 40),
                                   cache_images=True)
    for index in range(len(plain)):
        torch.manual_seed(index)
        expected = plain[index][0]
        torch.manual_seed(index)
        assert torch.equal(cached[index][0], expected)


def test_undecodable_image_names_the_file(voc_root: Path, labels):
    path = voc_root / IMAGES / "2007_000002.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(InputError, match="2007_000002.jpg: cannot decode"):
        ClassificationDataset(voc_root, "train", labels, 24, (20, 40), cache_images=True)
    ds = ClassificationDataset(voc_root, "train", labels, 24, (20, 40))
    with pytest.raises(InputError, match="2007_000002.jpg: cannot decode"):
        ds[1]


def test_half_a_file_is_a_decoding_error_naming_it_even_if_pil_is_lenient(voc_root: Path,
                                                                          monkeypatch):
    """Loading bypasses validation, so it must fail too: PIL pads truncated data with grey
    where ``LOAD_TRUNCATED_IMAGES`` is set, and would only fail at load time otherwise."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for path in (voc_root / IMAGES / "2007_000002.jpg", voc_root / SEG_CLASS / "2007_000002.png"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"JPEGImages/2007_000002\.jpg: cannot decode.*truncated"):
        VOCImages(voc_root, "train").load_image("2007_000002")
    with pytest.raises(InputError, match=r"SegmentationClass/2007_000002\.png: cannot decode"):
        SegmentationDataset(voc_root, "train").load_mask("2007_000002")
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # the caller's setting is left as it was


def test_resize_long_scale_widens_the_random_resize_range(voc_root):
    from seamlib.config import DataConfig

    labels = labels_for(voc_root, "train")
    for scale, expected in (((1.0, 1.0), (40, 56)), ((0.5, 1.5), (20, 84))):
        data = DataConfig(root=str(voc_root), train_list="train", crop_size=32,
                          resize_long=(40, 56), resize_long_scale=scale)
        resize = ClassificationDataset.from_config(data, labels).transform.transforms[0]
        assert (resize.low, resize.high) == expected
