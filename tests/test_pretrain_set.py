"""The proxy "ImageNet": deterministic, balanced, new shapes, class-independent backgrounds."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.pretrain_set import class_designs, distractor_designs, make_split
from seamlib.config import PretrainConfig
from seamlib.data.shapes import DESIGNS

TINY = PretrainConfig(n_distractors=20, n_train=2, n_heldout=1, image_size=32)


def test_same_seed_same_arrays_other_seed_differs():
    a, la, sa = make_split(TINY, "train", workers=1, progress=False)
    b, lb, sb = make_split(TINY, "train", workers=1, progress=False)
    assert a.shape == (80, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb) and np.array_equal(sa, sb)
    c, _, _ = make_split(PretrainConfig(**{**TINY.__dict__, "seed": 1}), "train", workers=1,
                         progress=False)
    assert not np.array_equal(a, c)


def test_worker_count_does_not_change_the_data():
    a, _, _ = make_split(TINY, "heldout", workers=1, progress=False)
    b, _, _ = make_split(TINY, "heldout", workers=2, progress=False)
    assert np.array_equal(a, b)


def test_splits_are_balanced_and_disjoint():
    train, labels, shares = make_split(TINY, "train", workers=1, progress=False)
    held, held_labels, _ = make_split(TINY, "heldout", workers=1, progress=False)
    assert np.bincount(labels).tolist() == [2] * 40
    assert np.bincount(held_labels).tolist() == [1] * 40
    assert (shares > 0.02).all()  # every image shows its object
    assert not any(np.array_equal(h, t) for h in held for t in train)


def test_distractors_are_new_fixed_shapes():
    designs = distractor_designs(24)
    assert len(designs) == 24 and distractor_designs(24) == designs
    assert len({d.body for d in designs}) == 24
    benchmark = {d.body for d in DESIGNS}
    assert not benchmark & {d.body for d in designs}
    assert [d.name for d in class_designs(TINY)][:20] == [d.name for d in DESIGNS]


def test_background_does_not_depend_on_the_class():
    """Corner pixels (rarely object) have the same colour statistics for every class."""
    cfg = PretrainConfig(n_distractors=20, n_train=12, image_size=32)
    images, labels, _ = make_split(cfg, "train", workers=2, progress=False)
    corner = images[:, :4, :4].reshape(len(images), -1, 3).mean(1)
    per_class = np.stack([corner[labels == k].mean(0) for k in range(40)])
    assert per_class.std(0).max() < 0.5 * corner.std(0).min()  # 1/sqrt(12) if independent


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown pretraining split"):
        make_split(TINY, "val")
