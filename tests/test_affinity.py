"""AffinityNet: pairs, labels, loss, network, released key names, data and training stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seamlib.config import ModelConfig, load_config
from seamlib.data.affinity_data import AffinityDataset, affinity_labels
from seamlib.data.lists import list_path
from seamlib.data.voc import IGNORE, read_list
from seamlib.formats import save_score_maps
from seamlib.models import build_model
from seamlib.models.affinity import (
    KEY_TABLE,
    build_affinity_net,
    dense_affinity,
    effective_radius,
    pair_indices,
    pair_labels,
    pair_offsets,
)
from seamlib.models.weights import load_weights, save_released, to_released
from seamlib.stages.train_affinity import affinity_loss, affinity_loss_fn, train_affinity

WIDTH = 0.0625
HEAD_KEYS = ("f8_3.weight", "f8_4.weight", "f8_5.weight", "f9.weight")


def net(radius: int = 5, frozen: bool = False):
    cfg = ModelConfig(width=WIDTH, frozen_bn=frozen, frozen_stem=frozen)
    return build_affinity_net(cfg, radius)


def test_pair_offsets_are_half_a_disc():
    offsets = pair_offsets(5)
    disc = {(y, x) for y in range(-4, 5) for x in range(-4, 5) if 0 < x * x + y * y < 25}
    assert len(offsets) == len(set(offsets)) == len(disc) // 2 == 34
    assert set(offsets) | {(-y, -x) for y, x in offsets} == disc  # each unordered pair once
    assert pair_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]


def test_effective_radius():
    assert effective_radius(5, 56, 56) == 5
    assert effective_radius(5, 8, 10) == 5  # from region: 4 rows, 2 columns
    assert effective_radius(5, 6, 6) == 3
    assert effective_radius(5, 4, 40) == 4
    assert effective_radius(5, 1, 40) == 1  # no pairs


def test_pair_indices_by_hand_and_displacements():
    ind_from, ind_to = pair_indices(2, 3, 4)  # 3 x 4 map: indices 0..11 row-major
    assert ind_from.tolist() == [1, 2, 5, 6]
    assert ind_to.tolist() == [[2, 3, 6, 7], [4, 5, 8, 9], [5, 6, 9, 10], [6, 7, 10, 11]]
    height, width = 12, 14
    ind_from, ind_to = pair_indices(5, height, width)
    for (dy, dx), to in zip(pair_offsets(5), ind_to, strict=True):
        assert ((to // width - ind_from // width) == dy).all()
        assert ((to % width - ind_from % width) == dx).all()
    assert pair_indices(1, 4, 4)[1].shape == (0, 0)


def test_pair_labels_by_hand():
    label = torch.tensor([[[0, 0, 5, 255], [0, 5, 5, 5], [7, 7, 5, 0]]])
    bg, fg, neg = pair_labels(label, radius=2)  # pairs as in the test above
    assert bg[0].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert fg[0].tolist() == [[0, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 1], [0, 1, 1, 0]]
    assert neg[0].tolist() == [[1, 0, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0], [1, 0, 0, 1]]


def test_affinity_loss_terms():
    aff = torch.tensor([[[0.5, 0.9, 0.2]]], requires_grad=True)
    bg, fg, neg = (torch.tensor([[[1.0, 0, 0]]]), torch.tensor([[[0, 1.0, 0]]]),
                   torch.tensor([[[0, 0, 1.0]]]))
    out = affinity_loss(aff, bg, fg, neg)
    eps = 1e-5
    expect = {"bg_loss": -np.log(0.5 + eps) / (1 + eps), "fg_loss": -np.log(0.9 + eps) / (1 + eps),
              "neg_loss": -np.log(1 + eps - 0.2) / (1 + eps)}
    for key, value in expect.items():
        assert out[key].item() == pytest.approx(value, rel=1e-5)
    total = expect["bg_loss"] / 4 + expect["fg_loss"] / 4 + expect["neg_loss"] / 2
    assert out["loss"].item() == pytest.approx(total, rel=1e-5)
    out["loss"].backward()
    assert aff.grad[0, 0, 0] < 0 and aff.grad[0, 0, 2] > 0  # pull positives up, negatives down
    empty = affinity_loss(aff, *(torch.zeros_like(aff),) * 3)
    assert empty["loss"].item() == 0  # no pairs of a kind: that term is 0, not NaN


def test_affinitynet_shapes_and_dense_matrix():
    torch.manual_seed(0)
    model = net().eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        aff = model(x)
        dense = model.dense(x[:1])
    radius = effective_radius(5, 6, 6)  # 48 / 8 = 6 -> radius 3
    ind_from, ind_to = pair_indices(radius, 6, 6)
    assert aff.shape == (2, len(pair_offsets(radius)), len(ind_from))
    assert ((aff > 0) & (aff <= 1)).all()
    assert dense.shape == (36, 36) and torch.equal(dense, dense.T)
    assert torch.equal(dense.diagonal(), torch.ones(36))
    assert torch.allclose(dense[ind_from, ind_to], aff[0])
    assert dense[0, 35] == 0  # beyond the radius
    with pytest.raises(ValueError, match="one image"):
        model.dense(x)


def test_dense_affinity_by_hand():
    # Radius 2 on a 2 x 4 map: "from" pixels 1 and 2, offsets (0, 1), (1, -1), (1, 0), (1, 1).
    aff = torch.tensor([[0.5, 0.25], [0.125, 0.75], [0.375, 0.625], [0.875, 0.0625]])
    dense = dense_affinity(aff, 2, 4, radius=2)
    expect = torch.eye(8)
    pairs = {(1, 2): 0.5, (2, 3): 0.25, (1, 4): 0.125, (2, 5): 0.75, (1, 5): 0.375,
             (2, 6): 0.625, (1, 6): 0.875, (2, 7): 0.0625}
    for (i, j), value in pairs.items():
        expect[i, j] = expect[j, i] = value
    assert torch.equal(dense, expect)


def test_parameter_groups_and_freezing():
    model = build_affinity_net(ModelConfig(width=WIDTH), radius=5)  # reference freezing
    groups = {g["name"]: g for g in model.parameter_groups(0.01, 5e-4)}
    assert set(groups) == {"weight", "head_weight"}
    head = {id(p) for p in groups["head_weight"]["params"]}
    assert head == {id(getattr(model, n).weight) for n in ("f8_3", "f8_4", "f8_5", "f9")}
    assert groups["head_weight"]["lr_mult"] == 10 and groups["head_weight"]["lr"] == 0.1
    assert not model.backbone.conv1a.weight.requires_grad
    model.train()
    assert not model.backbone.bn7.training and model.backbone.b7.dropout_2b1.training


def test_released_names_and_loading(tmp_path):
    torch.manual_seed(0)
    model = net()
    released = to_released(model.state_dict(), KEY_TABLE)
    assert set(HEAD_KEYS) <= set(released) and "conv1a.weight" in released
    assert not any(k.startswith("backbone.") for k in released)
    path = save_released(model, tmp_path / "resnet38_aff.pth")
    assert set(torch.load(path)) == {k for k in released if "num_batches" not in k}
    other = net()
    report = load_weights(other, path)  # a full AffinityNet checkpoint: strict
    assert report.kind == "seam" and report.expected_missing == ()
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    broken = torch.load(path)
    del broken["f8_5.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing from the file \(1\):\n    f8_5.weight"):
        load_weights(net(), tmp_path / "broken.pth")


def test_trunk_from_a_seam_checkpoint(tmp_path):
    torch.manual_seed(1)
    seam = build_model(ModelConfig(width=WIDTH, frozen_bn=False, frozen_stem=False))
    path = save_released(seam, tmp_path / "seam.pth")
    model = net()
    report = load_weights(model, path, kind="imagenet")
    assert report.expected_missing == HEAD_KEYS
    assert {"fc8.weight", "f8_3.weight", "f9.weight"} <= set(report.dropped)
    assert torch.equal(model.backbone.b4_1.conv_branch2a.weight,
                       seam.backbone.b4_1.conv_branch2a.weight)


# ----------------------------------------------------------------------------------- data


def write_scores(root, score_dir, images, list_name="train_aug"):
    """CRF score maps [background, first class] per image: la and ha say the class on the left
    half and background on the right; on the top row la says background, ha the class."""
    for image_id in read_list(list_path(root, list_name)):
        height, width, classes = images[image_id]
        la = np.zeros((2, height, width), np.float32)
        la[0], la[1] = 0.9, 0.1
        la[0, :, : width // 2], la[1, :, : width // 2] = 0.1, 0.9
        ha = la.copy()
        la[0, 0], la[1, 0], ha[0, 0], ha[1, 0] = 0.9, 0.1, 0.1, 0.9
        save_score_maps(score_dir / f"{image_id}.npz", la, ha, np.array(classes[:1]))


def test_affinity_labels_by_hand():
    """Average pooling to stride 8, then the argmax (the authors'), not the block's centre
    pixel: on a 16 x 16 map over [background, class 3, class 15]."""
    la = np.zeros((3, 16, 16), np.float32)
    la[2, :8, :3] = 1.0  # block (0, 0): class 15 on its 3 left columns...
    la[1, :8, 3:8], la[2, :8, 3:8] = 0.6, 0.4  # ...class 3 on the others (centre (4, 4))
    ha = la.copy()
    # block (0, 1): no score at all (crop padding)
    la[0, 8:, :8] = ha[0, 8:, :8] = 1.0  # block (1, 0): background in both
    la[0, 8:, 8:], la[1, 8:, 8:] = 0.7, 0.3  # block (1, 1): la background, ha class 3:
    ha[0, 8:, 8:], ha[1, 8:, 8:] = 0.2, 0.8  # unsure
    scores = torch.from_numpy(np.concatenate([la, ha]))
    # Pooled block (0, 0): class 15 (3 + 5 x 0.4) / 8 = 0.625 > class 3 5 x 0.6 / 8 = 0.375;
    # its centre pixel said class 3.
    assert affinity_labels(scores, np.array([3, 15])).tolist() == [[15, IGNORE], [0, IGNORE]]


def test_affinity_dataset(voc_root, tiny, tmp_path):
    write_scores(voc_root, tmp_path / "labels", tiny.images)
    data = AffinityDataset(voc_root, "train_aug", tmp_path / "labels", crop_size=48,
                           resize_long=(40, 56))
    torch.manual_seed(0)
    for index, image_id in enumerate(data.ids):
        image, label, got_id = data[index]
        assert got_id == image_id and image.shape == (3, 48, 48) and label.shape == (6, 6)
        assert set(label.unique().tolist()) <= {0, tiny.images[image_id][2][0], IGNORE}
    torch.manual_seed(3)
    first = data[2]
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first[:2], data[2][:2], strict=True))


def test_affinity_dataset_alignment(tmp_path, tiny):
    """A 48 x 48 image, crop 48: no crop offset, so the stride-8 labels are the blocks',
    flipped together with the image."""
    root = tiny.build(tmp_path / "VOC2012", {"img": (48, 48, (5,))}, {"train_aug": ["img"]})
    scores = np.zeros((2, 48, 48), np.float32)
    scores[1, :, :24] = scores[0, :, 24:] = 1
    save_score_maps(tmp_path / "labels" / "img.npz", scores, scores, np.array([5]))
    data = AffinityDataset(root, "train_aug", tmp_path / "labels", 48, color_jitter=(0,) * 4)
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        image, got, _ = data[0]
        row = tuple(got[0].tolist())
        assert (got == got[0]).all() and row in {(5, 5, 5, 0, 0, 0), (0, 0, 0, 5, 5, 5)}
        seen.add(row)
    assert len(seen) == 2  # both flips happen


def test_affinity_dataset_padding_has_no_score(tmp_path, tiny):
    """A 24 x 24 background image in a 48 crop: the blocks it touches (3 or 4 a side) are
    background, the blocks of padding alone have no score and are ignored."""
    root = tiny.build(tmp_path / "VOC2012", {"img": (24, 24, (5,))}, {"train_aug": ["img"]})
    scores = np.zeros((2, 24, 24), np.float32)
    scores[0] = 1
    save_score_maps(tmp_path / "labels" / "img.npz", scores, scores, np.array([5]))
    data = AffinityDataset(root, "train_aug", tmp_path / "labels", 48)
    for seed in range(4):
        torch.manual_seed(seed)
        label = data[0][1]
        rows, cols = (label == 0).any(1).nonzero(), (label == 0).any(0).nonzero()
        assert len(rows) in (3, 4) and len(cols) in (3, 4)
        inside = label[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (inside == 0).all() and (label == IGNORE).sum() == 36 - inside.numel()


def test_affinity_dataset_errors(voc_root, tiny, tmp_path):
    write_scores(voc_root, tmp_path / "labels", tiny.images)
    with pytest.raises(ValueError, match="multiple of 8"):
        AffinityDataset(voc_root, "train_aug", tmp_path / "labels", crop_size=44)
    small = np.ones((2, 8, 8), np.float32)
    save_score_maps(tmp_path / "labels" / "2007_000001.npz", small, small, np.array([15]))
    with pytest.raises(ValueError, match="score maps are 8x8 but its image is 40x30"):
        AffinityDataset(voc_root, "train_aug", tmp_path / "labels", crop_size=48)[0]
    (tmp_path / "labels" / "2007_000002.npz").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000002"):
        AffinityDataset(voc_root, "train_aug", tmp_path / "labels", crop_size=48)


def test_loss_fn_trains_on_a_batch(voc_root, tiny, tmp_path):
    write_scores(voc_root, tmp_path / "labels", tiny.images)
    data = AffinityDataset(voc_root, "train_aug", tmp_path / "labels", crop_size=48)
    torch.manual_seed(0)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    model = net(radius=2)
    out = affinity_loss_fn(model, batch)
    assert set(out) == {"loss", "bg_loss", "fg_loss", "neg_loss"}
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.f9.weight.grad.abs().sum() > 0


def test_train_affinity_smoke(voc_root, tiny, tmp_path):
    write_scores(voc_root, tmp_path / "labels", tiny.images)
    cfg = load_config("smoke", data_root=voc_root)
    cfg.device = "cpu"
    path = train_affinity(cfg, tmp_path / "labels", tmp_path / "aff", progress=False)
    assert path.is_file()
    assert "f8_5.weight" in torch.load(path)  # released names
    load_weights(net(radius=cfg.affinity.radius), path)  # loads back, strictly
    assert (tmp_path / "aff" / "config.json").is_file()


def test_train_affinity_is_reproducible(voc_root, tiny, tmp_path):
    """Two runs of one config give the same weights: the new layers' initialisation is seeded
    (it came from whatever state the global RNG was left in, so reruns differed)."""
    write_scores(voc_root, tmp_path / "labels", tiny.images)
    cfg = load_config("smoke", data_root=voc_root)
    cfg.device = "cpu"
    first, second = (torch.load(train_affinity(cfg, tmp_path / "labels", tmp_path / name,
                                               progress=False)) for name in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)
