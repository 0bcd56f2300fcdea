"""The command line: override parsing, config errors, help lines, profile and device."""

import argparse

import pytest

from seamlib.cli import build_parser, config_from, parse_overrides
from seamlib.config import DEFAULT_PROFILE, load_config


def test_parse_overrides_keeps_text_for_the_config_to_type():
    out = parse_overrides(["train.epochs=2", "data.root=/tmp/x", "loss.use_er=false",
                           "data.resize_long=(64, 96)", "data.root=a=b"])
    assert out == {"train": {"epochs": "2"}, "data": {"root": "a=b", "resize_long": "(64, 96)"},
                   "loss": {"use_er": "false"}}


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_set_false_turns_a_flag_off():
    cfg = config_from(args_for("train", "--profile", "smoke", "--set", "loss.use_er=false",
                               "--set", "data.resize_long=40,56"))
    assert cfg.loss.use_er is False and cfg.data.resize_long == (40, 56)


def test_a_bad_setting_stops_the_command_with_its_name():
    with pytest.raises(SystemExit, match=r"train\.epochs.*expected int"):
        config_from(args_for("train", "--set", "train.epochs=2.5"))


def test_every_subcommand_has_a_one_line_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    for name, text in helps.items():
        assert text and text.strip() and "\n" not in text.strip(), name
    assert all(name in parser.format_help() for name in helps)


def test_every_config_subcommand_defaults_to_the_default_profile():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        profile = [a for a in p._actions if a.dest == "profile"]
        assert not profile or profile[0].default == DEFAULT_PROFILE, name


@pytest.mark.parametrize("command", ["train", "difficulty"])
def test_device_flag_sets_the_config_device(command):
    assert config_from(args_for(command, "--device", "cpu")).device == "cpu"
    assert config_from(args_for(command)).device == "auto"


def test_device_flag_is_checked_before_work_starts(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        config_from(args_for("train", "--device", "cuda"))
    with pytest.raises(SystemExit, match="cannot parse"):
        config_from(args_for("train", "--device", "gpu0"))


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
    assert proxy.train.momentum == 0.9 and not proxy.model.frozen_bn
    assert proxy.loss == voc.loss  # the method is the same in every profile
