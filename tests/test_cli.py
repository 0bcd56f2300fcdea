"""The command line: override parsing and config errors."""

import dataclasses

import pytest

from seamlib.cli import parse_overrides
from seamlib.config import load_config


def test_parse_overrides_types():
    out = parse_overrides(["train.epochs=2", "data.root=/tmp/x", "loss.use_er=False",
                           "data.resize_long=(64, 96)"])
    assert out == {"train": {"epochs": 2}, "data": {"root": "/tmp/x", "resize_long": (64, 96)},
                   "loss": {"use_er": False}}


def test_parse_overrides_rejects_malformed():
    with pytest.raises(SystemExit, match="STAGE.SETTING=VALUE"):
        parse_overrides(["epochs=2"])


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="train.epoch"):
        load_config("smoke", {"train": {"epoch": 3}})
    with pytest.raises(ValueError, match="unknown config stage 'trian'"):
        load_config("smoke", {"trian": {"epochs": 3}})
    with pytest.raises(ValueError, match="unknown profile"):
        load_config("laptop")


def test_profiles_override_reference_defaults():
    voc, proxy = load_config("voc"), load_config("proxy")
    assert voc.train.momentum == 5e-4 and voc.model.frozen_bn and voc.data.crop_size == 448
    # proxy fine-tunes its pretrained trunk with the reference optimiser and freezing
    assert proxy.train == dataclasses.replace(voc.train, out_dir=proxy.train.out_dir)
    assert proxy.model.frozen_bn and proxy.model.frozen_stem
    assert proxy.model.weights == proxy.pretrain.trunk and voc.pretrain.trunk is None
    assert proxy.loss == voc.loss  # the method is the same in every profile
