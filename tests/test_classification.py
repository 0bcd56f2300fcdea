"""Classification quality: VOC average precision against hand computations, and the image
scores of a network on a list."""

import numpy as np
import pytest

from study.classification import average_precision


def test_average_precision_uses_the_voc2010_precision_envelope():
    # ranks 1..5 hit, miss, miss, hit, hit: precision at the hits 1, 2/4, 3/5. Without the
    # envelope AP = (1 + 0.5 + 0.6) / 3 = 0.700; the monotone envelope lifts rank 4 to 0.6
    # (the best precision at equal or higher recall): AP = (1 + 0.6 + 0.6) / 3 = 0.733.
    scores_ = np.array([[0.9], [0.8], [0.7], [0.6], [0.5]])
    targets = np.array([[1], [0], [0], [1], [1]])
    assert average_precision(scores_, targets)[0] == pytest.approx(2.2 / 3)


def test_average_precision_hand_example():
    scores_ = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3]])
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    ap = average_precision(scores_, targets)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert np.isnan(ap[1])


# ------------------------------------------------------------------ evaluate(any output)


def test_image_scores_pool_the_fc8_cams_of_the_rescaled_whole_images(voc_root):
    import torch

    from seamlib.config import load_config
    from seamlib.data.datasets import ClassificationDataset
    from seamlib.data.lists import labels_for
    from seamlib.models import build_model
    from seamlib.transforms import Rescale
    from study.classification import image_scores

    cfg = load_config("smoke", {}, voc_root)
    torch.manual_seed(0)
    net = build_model(cfg.model)
    scores, targets = image_scores(net, cfg, "val", scale=0.5)
    labels = labels_for(voc_root, "val", cfg.data.label_source)
    data = ClassificationDataset.from_config(cfg.data, labels, "val", train=False)
    images = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        pooled = net(Rescale(0.5)(images), with_pcm=False).cam[:, 1:].mean((2, 3))
    assert scores.shape == targets.shape == (2, 20)
    assert np.array_equal(scores, pooled.numpy())
    assert np.array_equal(targets, np.stack([labels[i] for i in ("2007_000004", "2007_000005")]))
