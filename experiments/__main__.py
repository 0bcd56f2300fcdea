"""Lab tools over the pipeline's stages: ``python -m experiments <command>``.

    python -m experiments compare --profile proxy --seeds 0 1 2 --out results/proxy
    python -m experiments difficulty --profile proxy --out results/proxy
    python -m experiments pretrain --profile proxy --verify
    python -m experiments datasheet --profile proxy --out results/proxy
    python -m experiments probe --profile proxy
    python -m experiments random-walk-sweep runs/proxy --profile proxy --out rw.json
    python -m experiments pipeline-report seam=DIR baseline=DIR --out results/proxy/pipeline

Each writes under runs/PROFILE/ unless told ``--out``; the committed results/ change only
when asked. Errors end as in ``seam``: one line, exit status 2 (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from seamlib.cli import add_config_args, config_from, run_command
from seamlib.config import Config
from seamlib.errors import InputError
from seamlib.formats import atomic_write, write_json


def command_line(args: argparse.Namespace) -> str:
    """This invocation, as a user would type it (recorded in every report)."""
    return shlex.join(["python", "-m", "experiments", *args.argv])


def out_dir(args: argparse.Namespace, cfg: Config) -> Path:
    """``--out``, else runs/PROFILE: the committed results/ are written only when asked."""
    return Path(args.out) if args.out else Path("runs") / cfg.profile


def cmd_compare(args: argparse.Namespace) -> None:
    """SEAM vs the plain-CAM baseline over seeds -> OUT/seam_vs_baseline.{json,md,png}"""
    from experiments.compare import compare

    cfg = config_from(args)
    out = out_dir(args, cfg)
    report = compare(cfg, args.seeds, command_line(args), out, workers=args.workers,
                     extend=args.extend)
    print("\n".join(report["findings"]))
    print(out / "seam_vs_baseline.md")


def cmd_difficulty(args: argparse.Namespace) -> None:
    """train the plain-CAM baseline, measure mAP and CAM mIoU -> OUT/difficulty.json"""
    from experiments.difficulty import measure_difficulty

    cfg = config_from(args)
    result = measure_difficulty(cfg, command_line(args))
    path = out_dir(args, cfg) / "difficulty.json"
    atomic_write(path, lambda t: t.write_text(json.dumps(result, indent=1)))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}, indent=1))
    print(path)


def cmd_datasheet(args: argparse.Namespace) -> None:
    """write OUT/datasheet.md from the data (and OUT/difficulty.json if present)"""
    from experiments.datasheet import write_datasheet

    cfg = config_from(args)
    out = out_dir(args, cfg)
    path = out / "difficulty.json"
    difficulty = json.loads(path.read_text()) if path.exists() else None
    print(write_datasheet(cfg.data.root, out, difficulty))


def cmd_pretrain(args: argparse.Namespace) -> None:
    """verify the profile's pretrained trunk, or train it when absent or asked (--force)"""
    from experiments.pretrain import pretrain
    from seamlib.models.weights import verify_trunk

    cfg = config_from(args)
    if cfg.pretrain.trunk is None:
        raise InputError(f"profile {cfg.profile!r} has no pretraining stage: it starts from "
                         "released ImageNet weights (model.weights)")
    if args.verify or (Path(cfg.pretrain.trunk).exists() and not args.force):
        print(f"{verify_trunk(cfg.pretrain.trunk, cfg.pretrain.trunk_sha256)}: sha256 ok")
        return
    print(pretrain(cfg, command_line(args), out_dir(args, cfg)))


def cmd_probe(args: argparse.Namespace) -> None:
    """diagnose fine-tuning: frozen-trunk linear probe vs fc8 alone -> OUT/probe.json"""
    from experiments.probe import probe

    cfg = config_from(args)
    result = probe(cfg, command_line(args))
    path = out_dir(args, cfg) / "probe.json"
    atomic_write(path, lambda t: t.write_text(json.dumps(result, indent=1)))
    print(json.dumps(result, indent=1))
    print(path)


def cmd_geometry(args: argparse.Namespace) -> None:
    """the geometry diagnosis (larger second branches, no ER, ...) -> OUT/geometry.*"""
    from experiments.geometry import DIAGNOSTICS, run_diagnostics

    cfg = config_from(args)
    out = out_dir(args, cfg)
    runs = Path(args.runs or Path("runs") / cfg.profile / "geometry")
    report = run_diagnostics(cfg, args.names or list(DIAGNOSTICS), out, runs,
                             command_line(args), args.workers)
    print(f"{len(report['records'])} models -> {out / 'geometry.md'}")


def cmd_random_walk_sweep(args: argparse.Namespace) -> None:
    """score a run's random walk over a grid of logt and alpha (its CAMs and AffinityNet)"""
    from experiments.random_walk_sweep import random_walk_sweep
    from seamlib.device import hardware

    cfg = config_from(args)
    result = random_walk_sweep(args.run_dir, cfg, args.logt, args.alpha, args.list)
    result.update(command=command_line(args), hardware=hardware())
    atomic_write(Path(args.out), lambda t: t.write_text(json.dumps(result, indent=1)))
    for row in result["rows"]:
        print(f"logt {row['logt']} alpha {row['alpha']:g}: mIoU {row['miou']:.1%}")
    print(f"best: {result['best']} -> {args.out}")


def cmd_pipeline_report(args: argparse.Namespace) -> None:
    """tabulate finished `seam run` folders (NAME=DIR ...) into OUT.json and OUT.md"""
    from seamlib.report import format_report, pipeline_report

    runs = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise InputError(f"run {item!r}: expected NAME=DIR, e.g. seam=runs/proxy/seam")
        runs[name] = Path(folder)
    report = pipeline_report(runs, command_line(args), args.setup)
    base = Path(args.out)
    write_json(base.with_suffix(".json"), report)
    atomic_write(base.with_suffix(".md"), lambda t: t.write_text(format_report(report)))
    print(format_report(report))


OUT = ("--out", {"default": None, "help": "output folder (default: runs/PROFILE)"})


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per lab tool, each with the pipeline's config options."""
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(func, device: bool, *options: tuple[str, dict]) -> None:
        p = sub.add_parser(func.__name__.removeprefix("cmd_").replace("_", "-"),
                           help=func.__doc__, description=func.__doc__)
        add_config_args(p, device)
        for flag, kw in options:
            p.add_argument(flag, **kw)
        p.set_defaults(func=func)

    add(cmd_compare, True, OUT,
        ("--seeds", {"type": int, "nargs": "+", "default": [0, 1, 2],
                     "help": "training seeds (default: 0 1 2)"}),
        ("--workers", {"type": int, "default": 1,
                       "help": "runs trained at once, each in its own process with an equal "
                               "share of the CPU threads (default 1)"}),
        ("--extend", {"action": "store_true",
                      "help": "keep the other seeds' runs of OUT/seam_vs_baseline.json (made "
                              "with the same settings) and add these seeds to it"}))
    add(cmd_difficulty, True, OUT)
    add(cmd_datasheet, False, OUT)
    add(cmd_pretrain, False, OUT,
        ("--force", {"action": "store_true", "help": "train even if the trunk exists"}),
        ("--verify", {"action": "store_true", "help": "only check the trunk's sha256"}))
    add(cmd_probe, False, OUT)
    add(cmd_geometry, True, OUT,
        ("--names", {"nargs": "+", "default": None,
                     "help": "diagnostics to run (default: all of experiments.geometry)"}),
        ("--workers", {"type": int, "default": 2,
                       "help": "models trained at once, one torch thread each (default 2)"}),
        ("--runs", {"default": None, "help": "training folders (default: runs/PROFILE/geometry)"}))
    add(cmd_random_walk_sweep, True,
        ("run_dir", {"help": "a `seam run` folder with cams/ and affinity/model.pth"}),
        ("--logt", {"type": int, "nargs": "+", "default": [0, 1, 2, 3, 6],
                    "help": "log2 of the walk's steps (default: 0 1 2 3 6)"}),
        ("--alpha", {"type": float, "nargs": "+", "default": [2.0, 3.0, 4.0, 6.0],
                     "help": "background exponents (default: 2 3 4 6)"}),
        ("--list", {"default": None, "help": "list scored (default: data.cam_list)"}),
        ("--out", {"required": True, "help": "JSON file to write the grid to"}))
    p = sub.add_parser("pipeline-report", help=cmd_pipeline_report.__doc__)
    p.add_argument("runs", nargs="+", metavar="NAME=DIR", help="finished `seam run` folders")
    p.add_argument("--out", required=True, help="output path without suffix")
    p.add_argument("--setup", default="", help="how the runs were run (threads, cores, ...)")
    p.set_defaults(func=cmd_pipeline_report)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    run_command(args, "experiments")


if __name__ == "__main__":
    main()
