"""Training: poly schedule, an end-to-end smoke run, resume and reproducibility."""

import json

import pytest
import torch

import seamlib.trainer
from seamlib.config import load_config
from seamlib.data.synthetic import generate
from seamlib.models import build_model
from seamlib.models.weights import load_weights
from seamlib.train import CHECKPOINT, build_optimizer, poly_factor, train


def test_poly_factor():
    assert poly_factor(0, 100, 0.9) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5 ** 0.9)
    assert poly_factor(100, 100, 0.9) == 0.0


def test_optimizer_reproduces_the_momentum_quirk_by_default():
    cfg = load_config("voc")
    net = build_model(load_config("smoke").model)
    opt = build_optimizer(net, cfg)
    assert all(g["momentum"] == 5e-4 for g in opt.param_groups)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "VOC2012"
    cfg = load_config("smoke", {"train": {"epochs": 2}}, data_root=root)
    generate(cfg.synthetic, root, workers=1)
    return cfg


def test_smoke_training_writes_loadable_weights_and_log(smoke, tmp_path):
    weights = train(smoke, tmp_path / "run", progress=False)
    net = build_model(smoke.model)
    load_weights(net, weights)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"cls", "er", "ecr", "rvmin", "loss"} <= set(rows[-1])
    assert rows[-1]["step"] == 2 * (28 // smoke.train.batch_size)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == rows[-1]["step"]


def test_resume_continues_to_the_same_weights(smoke, tmp_path, monkeypatch):
    full = train(smoke, tmp_path / "full", progress=False)

    def save_then_stop(*args, **kwargs):  # the run is killed right after epoch 1's checkpoint
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    real_save = seamlib.trainer.save_checkpoint
    monkeypatch.setattr(seamlib.trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(smoke, tmp_path / "resumed", progress=False)
    monkeypatch.undo()
    assert not (tmp_path / "resumed" / "model.pth").exists()
    resumed = train(smoke, tmp_path / "resumed", progress=False)
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert (tmp_path / "resumed" / CHECKPOINT).exists()


def test_a_run_folder_refuses_other_settings(smoke, tmp_path):
    train(smoke, tmp_path / "run", progress=False)
    assert train(smoke, tmp_path / "run", progress=False) == tmp_path / "run" / "model.pth"
    other = load_config("smoke", {"train": {"epochs": 3}}, data_root=smoke.data.root)
    with pytest.raises(ValueError, match=r"train\.epochs"):
        train(other, tmp_path / "run", progress=False)


def test_training_labels_come_from_the_configured_source(tmp_path, monkeypatch):
    calls = []

    def record(root, list_name, source="xml"):
        calls.append(source)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(seamlib.train, "labels_for", record)
    for source in ("xml", "mask"):
        cfg = load_config("smoke", {"data": {"label_source": source},
                                    "train": {"out_dir": str(tmp_path / source)}})
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    assert calls == ["xml", "mask"]
    assert load_config("voc").data.label_source == "xml"
