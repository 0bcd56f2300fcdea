"""The ``seam`` command: the pipeline's stages, in the paper's order.

    seam data --profile proxy          # generate, download or only check the dataset
    seam train_cam --profile proxy     # the CAM network (SEAM, or the baseline with ER/ECR off)
    seam cams --profile proxy          # multi-scale CAMs of a list from the trained weights
    seam crf --cams DIR --out DIR      # dense-CRF score maps for AffinityNet
    seam train_affinity --labels DIR   # train AffinityNet
    seam random_walk --cams DIR --weights FILE --out DIR   # pseudo labels
    seam train_seg --labels DIR        # DeepLab-LargeFOV on the pseudo labels
    seam segment --weights FILE --out DIR                  # predict a list
    seam evaluate DIR                  # mIoU / mFP / mFN against the masks
    seam export --pred DIR --out DIR   # VOC evaluation-server archive
    seam run --profile smoke           # every stage above in one run folder, resumable

The runs behind the paper's tables are ``python -m study reproduce`` and the notebooks run
headless with ``python -m study notebook``; lab tools (comparisons,
difficulty, probes, the proxy trunk's pretraining) are ``python -m experiments``; benchmarks
are ``python -m benchmarks.bench``.
A bad input ends with one line, ``seam <command>: <what is wrong>``, and exit status 2; Ctrl-C
with one line and 130; a bug with its traceback and 1 (``--debug``: every traceback).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import traceback
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from seamlib.config import (
    DEFAULT_PROFILE,
    PROFILES_NAMES,
    VARIANTS,
    Config,
    load_config,
    variant_config,
)
from seamlib.errors import InputError, Interrupted, MissingFile, SeamError
from seamlib.pipeline import STAGE_NAMES, run_folder

INPUT_FOLDERS = ("pred_dir", "pred", "cams", "labels")  # arguments naming folders a command reads
# Commands that make data.root themselves (or do not read it): no dataset check first.
MAKES_DATA = ("data", "run")


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``["crf.iterations=2", "data.root=x"]`` -> ``{"crf": {"iterations": "2"}, "data": {...}}``;
    the text is converted to each setting's declared type by ``config.apply_overrides``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot:
            raise InputError(f"--set {item!r}: expected STAGE.SETTING=VALUE, e.g. crf.iterations=2")
        out.setdefault(stage, {})[name] = raw
    return out


def config_from(args: argparse.Namespace) -> Config:
    """The profile's config with the command's ``--set``, ``--data-root`` and ``--device``."""
    cfg = load_config(args.profile, parse_overrides(args.set), args.data_root)
    if getattr(args, "device", None):
        from seamlib.device import resolve_device

        resolve_device(args.device)  # fail now, not after the data is loaded
        cfg.device = args.device
    return cfg


def cmd_data(args: argparse.Namespace) -> None:
    """generate, download or only check (data.prepare) the dataset; validate, cache labels"""
    from seamlib.data.prepare import prepare_data

    print(prepare_data(config_from(args)))


def cmd_train_cam(args: argparse.Namespace) -> None:
    """train the CAM network; writes TRAIN_CAM.OUT_DIR/model.pth (resumes an interrupted run)"""
    from seamlib.stages.train_cam import train_cam

    print(train_cam(config_from(args)))


def cmd_cams(args: argparse.Namespace) -> None:
    """write the multi-scale CAMs of a list from trained weights (PCM output, or --raw-cam)"""
    from seamlib.stages.cams import cams_stage

    cfg = config_from(args)
    print(cams_stage(cfg, args.weights, args.list, args.out, use_pcm=not args.raw_cam))


def cmd_crf(args: argparse.Namespace) -> None:
    """dense-CRF outputs of a list from its CAMs (AffinityNet's score maps, or --kind)"""
    from seamlib.stages.crf import crf_stage

    cfg = config_from(args)
    print(crf_stage(args.cams, cfg.data.root, args.list or cfg.data.train_list, args.out,
                    cfg.crf, kind=args.kind))


def cmd_train_affinity(args: argparse.Namespace) -> None:
    """train AffinityNet on data.train_list and the CRF score maps of --labels"""
    from seamlib.stages.train_affinity import train_affinity

    cfg = config_from(args)
    print(train_affinity(cfg, args.labels, args.out or cfg.train_affinity.out_dir))


def cmd_random_walk(args: argparse.Namespace) -> None:
    """random_walk pseudo-label PNGs of a list from its CAMs and AffinityNet weights"""
    from seamlib.stages.random_walk import random_walk_stage

    cfg = config_from(args)
    print(random_walk_stage(args.cams, args.weights, cfg.data.root,
                            args.list or cfg.data.train_list, args.out, cfg))


def cmd_train_seg(args: argparse.Namespace) -> None:
    """train DeepLab-LargeFOV on the pseudo-label PNGs of segment.train_list"""
    from seamlib.stages.train_seg import train_seg

    print(train_seg(config_from(args), args.labels, args.out))


def cmd_segment(args: argparse.Namespace) -> None:
    """multi-scale + flip (+CRF) segmentation PNGs of a list with trained weights"""
    from seamlib.stages.segment import segment_stage

    print(segment_stage(config_from(args), args.weights, args.list, args.out))


def cmd_evaluate(args: argparse.Namespace) -> None:
    """score a CAM folder (npz) or label-PNG folder against the masks of a list"""
    from seamlib.formats import atomic_write
    from seamlib.stages.evaluate import evaluate

    cfg = config_from(args)
    result = evaluate(args.pred_dir, cfg.data.root, args.list or cfg.data.cam_list, args.kind,
                      args.threshold, args.mask_dir)
    if args.out:
        text = json.dumps(result, indent=1, allow_nan=False)
        atomic_write(Path(args.out), lambda t: t.write_text(text))
    keys = ("kind", "list", "images", "threshold", "miou", "mfp", "mfn", "absent")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=1))


def cmd_export(args: argparse.Namespace) -> None:
    """pack a list's segmentation PNGs as a VOC evaluation-server tar.gz"""
    from seamlib.data.lists import list_path
    from seamlib.data.voc import read_list
    from seamlib.submission import export_submission

    ids = read_list(list_path(config_from(args).data.root, args.list))
    print(export_submission(args.pred, ids, args.out))


def cmd_run(args: argparse.Namespace) -> None:
    """the whole pipeline (data ... evaluate) in one run folder; unchanged stages are skipped"""
    from seamlib.pipeline import run_pipeline
    from seamlib.report import format_report, pipeline_report

    base = config_from(args)
    seed = base.train_cam.seed if args.seed is None else args.seed
    cfg = variant_config(base, args.variant, seed)
    run = Path(args.run_dir or run_folder(cfg.profile, args.variant, seed))
    until = args.until.replace("-", "_") if args.until else None
    timings = run_pipeline(cfg, run, until, replace=args.replace)
    if "evaluate" in timings:
        name = f"{cfg.profile} {args.variant} seed{seed}"
        print(format_report(pipeline_report({name: run}, " ".join(["seam", *sys.argv[1:]]))))
    else:
        print(f"stopped after {list(timings)[-1]} (--until); stage times: {run / 'timings.json'}")


def add_config_args(p: argparse.ArgumentParser, device: bool) -> None:
    """--profile, --data-root, --set and (for stages that run a network) --device."""
    p.add_argument("--profile", choices=PROFILES_NAMES, default=DEFAULT_PROFILE,
                   help=f"run profile (default: {DEFAULT_PROFILE})")
    p.add_argument("--data-root", default=None, help="override data.root")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.SETTING=VALUE",
                   help="override a setting, parsed to its type (e.g. loss.use_er=false, "
                        "data.resize_long=128,224, model.weights=none); repeatable")
    if device:
        p.add_argument("--device", default=None,
                       help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N; "
                            "default: the config's device (auto)")


CAMS = ("--cams", {"required": True, "help": "CAM folder (<id>.npz) of the list"})
TRAIN_LIST = ("--list", {"default": None, "help": "image list (default: data.train_list)"})
PNG_OUT = ("--out", {"required": True, "help": "output folder of label PNGs"})
Options = list[tuple[str, dict]]

# The subcommands in the pipeline's order: (function, runs a network, options).
COMMANDS: list[tuple[Callable, bool, Options]] = [
    (cmd_data, False, []),
    (cmd_train_cam, True, []),
    (cmd_cams, True, [
        ("--weights", {"default": None, "help": "trained checkpoint "
                                                "(default: TRAIN_CAM.OUT_DIR/model.pth)"}),
        ("--list", {"default": None, "help": "image list (default: data.cam_list)"}),
        ("--out", {"default": None, "help": "output folder (default: TRAIN_CAM.OUT_DIR/cams_LIST, "
                                            "cams_raw_LIST with --raw-cam)"}),
        ("--raw-cam", {"action": "store_true",
                       "help": "the classifier's fc8 CAM instead of the PCM-refined one"})]),
    (cmd_crf, False, [CAMS, TRAIN_LIST, ("--out", {"required": True, "help": "output folder"}),
                      ("--kind", {"choices": ("affinity", "threshold"), "default": "affinity",
                                  "help": "AffinityNet's two-alpha score maps, npz "
                                          "(default), or label PNGs of one background "
                                          "threshold"})]),
    (cmd_train_affinity, True, [
        ("--labels", {"required": True, "help": "CRF score-map folder (seam crf)"}),
        ("--out", {"default": None, "help": "output folder (default: train_affinity.out_dir)"})]),
    (cmd_random_walk, True, [CAMS, ("--weights", {"required": True,
                                                  "help": "AffinityNet model.pth"}),
                             TRAIN_LIST, PNG_OUT]),
    (cmd_train_seg, True, [
        ("--labels", {"required": True, "help": "pseudo-label PNG folder"}),
        ("--out", {"default": None, "help": "output folder (default: train_seg.out_dir)"})]),
    (cmd_segment, True, [
        ("--weights", {"required": True, "help": "retrained segmentation model.pth"}),
        ("--list", {"default": "val", "help": "image list (default: val)"}), PNG_OUT]),
    (cmd_evaluate, False, [
        ("pred_dir", {"help": "folder of <id>.npz CAMs or <id>.png label maps"}),
        ("--list", {"default": None, "help": "image list to score (default: data.cam_list, "
                                             "as seam cams)"}),
        ("--kind", {"choices": ("auto", "cam", "png"), "default": "auto",
                    "help": "what the folder holds (default: auto, from its files)"}),
        ("--threshold", {"type": float, "default": None,
                         "help": "CAM background threshold in [0, 1] "
                                 "(default: the best of a sweep)"}),
        ("--mask-dir", {"default": "SegmentationClass",
                        "help": "ground-truth folder under data.root (default: "
                                "SegmentationClass; SegmentationClassAug for train_aug)"}),
        ("--out", {"default": None, "help": "JSON file to write the full result to"})]),
    (cmd_export, False, [
        ("--pred", {"required": True, "help": "folder of segmentation PNGs"}),
        ("--list", {"default": "test", "help": "image list (default: test)"}),
        ("--out", {"required": True, "help": "folder for results.tar.gz"})]),
    (cmd_run, True, [
        ("--until", {"default": None, "metavar": "STAGE",
                     "help": "last stage to run (default: evaluate): "
                             + ", ".join(STAGE_NAMES)}),
        ("--variant", {"default": "seam", "choices": tuple(VARIANTS),
                       "help": "named settings overlay (default: seam; baseline: plain CAM)"}),
        ("--seed", {"type": int, "default": None,
                    "help": "training seed (default: the profile's train_cam.seed)"}),
        ("--run-dir", {"default": None,
                       "help": "run folder (default: runs/PROFILE/VARIANT/seedSEED)"}),
        ("--replace", {"action": "store_true",
                       "help": "retrain stages whose weights there were trained with other "
                               "settings (default: refuse, naming the setting)"})]),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``seam`` argument parser: one subcommand per stage, in the pipeline's order."""
    parser = argparse.ArgumentParser(prog="seam", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for func, device, options in COMMANDS:
        p = sub.add_parser(command_name(func), help=func.__doc__, description=func.__doc__)
        add_config_args(p, device)
        for flag, kw in options:
            p.add_argument(flag, **kw)
        p.set_defaults(func=func)
    return parser


def command_name(func: Callable) -> str:
    """``cmd_random_walk`` -> ``random_walk``: a command is named as its stage."""
    return func.__name__.removeprefix("cmd_")


def main(argv: list[str] | None = None) -> None:
    """Run one ``seam`` command; a bad input ends with one line and exit status 2."""
    args = build_parser().parse_args(argv)
    run_command(args, "seam", None if args.command in MAKES_DATA else require_dataset)


def run_command(args: argparse.Namespace, prog: str,
                check: Callable[[argparse.Namespace], None] | None = None) -> None:
    """Run a parsed command (after ``check``, if given). What the user can fix (``SeamError``)
    ends with one line, ``<prog> <command>: <what is wrong>``, and exit status 2; Ctrl-C with one
    line and 130; anything else is a bug: its traceback, a line on reporting it, exit 1.
    ``--debug`` shows every traceback."""
    try:
        if check is not None:
            check(args)
        args.func(args)
    except SeamError as err:
        if args.debug:
            raise
        print(f"{prog} {args.command}: {error_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        where = err.stage if isinstance(err, Interrupted) else args.command
        print(f"{prog} {args.command}: interrupted during {where}; rerun the same command to "
              "resume", file=sys.stderr)
        sys.exit(130)
    except Exception:
        if args.debug:
            raise
        traceback.print_exc()
        print(f"{prog} {args.command}: this is a bug in seamlib, not in your input; please "
              "report it with the command and the traceback above", file=sys.stderr)
        sys.exit(1)


def error_line(err: BaseException) -> str:
    """One line for an error: an OS error names its file; a message's lines are joined with
    "; " (after a line ending in ":", with a space)."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or type(err).__name__}"
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[0]
    for before, line in pairwise(lines):  # "found:" + items -> "found: a; b; c"
        text += (" " if before.endswith(":") else "; ") + line
    return text


def require_dataset(args: argparse.Namespace) -> None:
    """Refuse a command whose input folder (its argument) or data.root does not exist, naming
    what is missing first, then the ``seam data`` command that makes the data (a stage would
    otherwise fail deep inside with a missing file)."""
    for name in INPUT_FOLDERS:
        folder = getattr(args, name, None)
        if folder is not None and not Path(folder).is_dir():
            raise MissingFile(f"{folder}: no such folder (the {name.replace('_', ' ')} to read)")
    cfg = config_from(args)
    root = Path(cfg.data.root)
    if root.is_dir():
        return
    if cfg.data.prepare == "validate":
        raise InputError(f"data.root {root} does not exist; point --data-root at your "
                         f"VOC-format folder (JPEGImages/, ImageSets/Segmentation/)")
    command = ["seam", "data", "--profile", args.profile]
    command += ["--data-root", args.data_root] if args.data_root else []
    command += [word for item in args.set for word in ("--set", item)]
    raise InputError(f"data.root {root} does not exist; make it first with "
                     f"`{shlex.join(command)}`")


if __name__ == "__main__":
    main()
