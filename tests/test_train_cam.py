"""Training: poly schedule, an end-to-end smoke run, resume and reproducibility, and that a
run really optimises (each group steps by its lr x lr_mult x poly; the loss falls)."""

import json
import re
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

import seamlib.stages.train_cam
import seamlib.trainer
from seamlib.cli import main
from seamlib.config import apply_overrides, load_config
from seamlib.data.datasets import ClassificationDataset
from seamlib.data.lists import labels_for, list_path
from seamlib.data.synthetic import generate
from seamlib.data.voc import IMAGES, read_list
from seamlib.losses import classification_loss
from seamlib.models import build_model
from seamlib.models.weights import load_weights
from seamlib.stages.train_cam import train_cam
from seamlib.trainer import CHECKPOINT, build_optimizer, poly_factor


def test_poly_factor():
    assert poly_factor(0, 100, 0.9) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5 ** 0.9)
    assert poly_factor(100, 100, 0.9) == 0.0


def test_optimizer_reproduces_the_momentum_quirk_by_default():
    cfg = load_config("voc")
    net = build_model(load_config("smoke").model)
    opt = build_optimizer(net, cfg.train_cam)
    assert all(g["momentum"] == 5e-4 for g in opt.param_groups)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "VOC2012"
    cfg = load_config("smoke", {"train_cam": {"epochs": 2}}, data_root=root)
    generate(cfg.synthetic, root, workers=1)
    return cfg


def test_smoke_training_writes_loadable_weights_and_log(smoke, tmp_path):
    weights = train_cam(smoke, tmp_path / "run", progress=False)
    net = build_model(smoke.model)
    load_weights(net, weights)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"cls", "er", "ecr", "rvmin", "loss"} <= set(rows[-1])
    assert rows[-1]["step"] == 2 * (28 // smoke.train_cam.batch_size)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == rows[-1]["step"]
    # the training's own threads and machine, for reports written by other processes
    assert summary["threads"] == torch.get_num_threads()
    assert f", {summary['threads']} torch threads," in summary["hardware"]


def test_resume_continues_to_the_same_weights(smoke, tmp_path, monkeypatch):
    full = train_cam(smoke, tmp_path / "full", progress=False)

    def save_then_stop(*args, **kwargs):  # the run is killed right after epoch 1's checkpoint
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    real_save = seamlib.trainer.save_checkpoint
    monkeypatch.setattr(seamlib.trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_cam(smoke, tmp_path / "resumed", progress=False)
    monkeypatch.undo()
    assert not (tmp_path / "resumed" / "model.pth").exists()
    resumed = train_cam(smoke, tmp_path / "resumed", progress=False)
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert (tmp_path / "resumed" / CHECKPOINT).exists()


def test_a_run_folder_refuses_other_settings(smoke, tmp_path):
    train_cam(smoke, tmp_path / "run", progress=False)
    assert train_cam(smoke, tmp_path / "run", progress=False) == tmp_path / "run" / "model.pth"
    other = load_config("smoke", {"train_cam": {"epochs": 3}}, data_root=smoke.data.root)
    with pytest.raises(ValueError, match=r"train_cam\.epochs"):
        train_cam(other, tmp_path / "run", progress=False)


def test_training_labels_come_from_the_configured_source(tmp_path, monkeypatch):
    calls, checked = [], []

    def record(root, list_name, source="xml"):
        calls.append(source)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(seamlib.stages.train_cam, "labels_for", record)
    monkeypatch.setattr(seamlib.stages.train_cam, "check_inputs",
                        lambda root, lists, **kw: checked.append((lists, kw["need_masks"],
                                                                  kw["need_xml"])))
    for source in ("xml", "mask"):
        cfg = load_config("smoke", {"data": {"label_source": source},
                                    "train_cam": {"out_dir": str(tmp_path / source)}})
        with pytest.raises(KeyboardInterrupt):
            train_cam(cfg, progress=False)
    assert calls == ["xml", "mask"]
    assert checked == [(["train_aug"], False, True), (["train_aug"], True, False)]
    assert load_config("voc").data.label_source == "xml"


def test_seam_train_on_a_truncated_jpeg_fails_before_training_naming_it(smoke, tmp_path,
                                                                         monkeypatch, capsys):
    root = shutil.copytree(smoke.data.root, tmp_path / "VOC2012")
    image_id = read_list(list_path(root, smoke.data.train_list))[3]
    jpeg = root / IMAGES / f"{image_id}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    monkeypatch.setattr(seamlib.stages.train_cam, "build_model",
                        lambda *a: pytest.fail("training began"))
    with pytest.raises(SystemExit) as exit_:
        main(["train_cam", "--profile", "smoke", "--data-root", str(root),
              "--set", f"train_cam.out_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.split("\r")[-1]  # after the validation's progress bar
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("seam train_cam: ")
    assert re.search(rf"{IMAGES}/{image_id}\.jpg: truncated", err)
    assert not (tmp_path / "run").exists()


REFERENCE_LR_MULT = {"weight": 1, "bias": 2, "head_weight": 10, "head_bias": 20, "norm": 1}


@pytest.fixture(scope="module")
def plain_sgd_run(smoke, tmp_path_factory):
    """One epoch of the cls-only network with plain SGD (no momentum), every optimiser step
    recorded: per group its name, lr, weight decay and (before, grad, after) per parameter."""
    cfg = apply_overrides(smoke, {"loss": {"use_er": False, "use_ecr": False,
                                           "use_rvmin": False},
                                  "train_cam": {"momentum": 0.0, "lr": 0.1, "epochs": 1}})
    steps = []
    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        groups = [(g["name"], g["lr"], g["weight_decay"],
                   [(p, p.detach().clone(), None if p.grad is None else p.grad.clone())
                    for p in g["params"]]) for g in self.param_groups]
        result = real_step(self, *args, **kwargs)
        steps.append([(name, lr, wd, [(before, grad, p.detach().clone())
                                      for p, before, grad in params])
                      for name, lr, wd, params in groups])
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.SGD, "step", recording_step)
        weights = train_cam(cfg, tmp_path_factory.mktemp("plain_sgd"), progress=False)
    return cfg, steps, weights


def test_every_step_moves_every_group_by_lr_times_mult_times_poly(plain_sgd_run):
    """Each step moves each parameter by -lr * lr_mult * poly(step) * (grad + wd * param)."""
    cfg, steps, _ = plain_sgd_run
    max_step = cfg.train_cam.epochs * (28 // cfg.train_cam.batch_size)
    assert len(steps) == max_step
    for i, groups in enumerate(steps):
        names = {name for name, *_ in groups}  # ResNet38 convolutions and fc8 have no bias
        assert {"weight", "head_weight", "norm"} <= names <= set(REFERENCE_LR_MULT)
        for name, lr, wd, params in groups:
            expected_lr = cfg.train_cam.lr * REFERENCE_LR_MULT[name] * poly_factor(i, max_step, 0.9)
            assert lr == pytest.approx(expected_lr, rel=1e-12), (i, name)
            moved = 0.0
            for before, grad, after in params:
                if grad is None:
                    assert torch.equal(after, before)
                    continue
                want = -lr * (grad + wd * before)
                tol = 1e-6 * before.abs().max().item() + 1e-12  # float32 rounding of the sum
                torch.testing.assert_close(after - before, want, rtol=1e-3, atol=tol)
                moved = max(moved, want.abs().max().item() / tol)
            assert moved > 100, f"step {i}: group {name} barely moves"


@torch.no_grad()
def mean_classification_loss(net, cfg) -> float:
    """Soft-margin loss of pooled fc8 CAMs on the whole training images (no augmentation)."""
    labels = labels_for(cfg.data.root, cfg.data.train_list)
    data = ClassificationDataset.from_config(cfg.data, labels, train=False)
    net.eval()
    losses = [classification_loss(net(x, with_pcm=False).cam, y) * len(x)
              for x, y, _ in DataLoader(data, batch_size=32)]
    return float(sum(losses) / len(data))


def test_training_lowers_the_loss_on_the_smoke_task(plain_sgd_run):
    """One epoch takes the loss from about log 2 (0.693) to about 0.57; untrained: 0.69."""
    cfg, _, weights = plain_sgd_run
    torch.manual_seed(cfg.train_cam.seed)
    before = mean_classification_loss(build_model(cfg.model), cfg)
    net = build_model(cfg.model)
    load_weights(net, weights)
    after = mean_classification_loss(net, cfg)
    assert after < 0.9 * before, (before, after)
