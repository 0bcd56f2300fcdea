"""The ``seam`` command: every pipeline stage and the notebooks, for a profile.

    seam data --profile proxy            # generate (proxy/smoke) or download (voc), validate
    seam difficulty --profile proxy      # plain-CAM baseline numbers + datasheet
    seam train --profile proxy --set train.epochs=2
    seam pretrain --profile proxy        # verify the proxy trunk's sha256 (--force: retrain)
    seam notebook 01_data --profile proxy
    seam step-benchmark --width 1.0 --batch 2 --size 448
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

from seamlib.config import PROFILES_NAMES, Config, load_config
from seamlib.io import atomic_write

RESULTS = Path("results")


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.epochs=2", "data.root=x"]`` -> ``{"train": {"epochs": 2}, "data": {...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected STAGE.SETTING=VALUE, e.g. train.epochs=2")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare string such as a path
        out.setdefault(stage, {})[name] = value
    return out


def config_from(args: argparse.Namespace) -> Config:
    return load_config(args.profile, parse_overrides(args.set), args.data_root)


def cmd_data(args: argparse.Namespace) -> None:
    from seamlib.data.prepare import prepare_data

    print(prepare_data(config_from(args)))


def cmd_difficulty(args: argparse.Namespace) -> None:
    from seamlib.baseline import measure_difficulty
    from seamlib.data.datasheet import write_datasheet

    cfg = config_from(args)
    command = " ".join(["seam", *sys.argv[1:]])
    result = measure_difficulty(cfg, command)
    out = RESULTS / cfg.profile
    atomic_write(out / "difficulty.json", lambda t: t.write_text(json.dumps(result, indent=1)))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}, indent=1))
    print(write_datasheet(cfg.data.root, out, result))


def cmd_datasheet(args: argparse.Namespace) -> None:
    from seamlib.data.datasheet import write_datasheet

    cfg = config_from(args)
    path = RESULTS / cfg.profile / "difficulty.json"
    difficulty = json.loads(path.read_text()) if path.exists() else None
    print(write_datasheet(cfg.data.root, RESULTS / cfg.profile, difficulty))


def cmd_train(args: argparse.Namespace) -> None:
    from seamlib.train import train

    print(train(config_from(args)))


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Verify the profile's pretrained trunk, or train it when absent or asked (--force)."""
    from seamlib.pretrain import pretrain, verify_trunk

    cfg = config_from(args)
    if cfg.pretrain.trunk is None:
        raise SystemExit(f"profile {cfg.profile!r} has no pretraining stage: it starts from "
                         "released ImageNet weights (model.weights)")
    if args.verify or (Path(cfg.pretrain.trunk).exists() and not args.force):
        print(f"{verify_trunk(cfg.pretrain.trunk, cfg.pretrain.trunk_sha256)}: sha256 ok")
        return
    print(pretrain(cfg, " ".join(["seam", *sys.argv[1:]])))


def cmd_notebook(args: argparse.Namespace) -> None:
    import papermill

    source = Path("notebooks") / f"{args.name}.ipynb"
    if not source.exists():
        raise SystemExit(f"{source}: no such notebook")
    target = RESULTS / args.profile / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": args.profile}
    if args.data_root:
        params["data_root"] = args.data_root
    papermill.execute_notebook(str(source), str(target), parameters=params, cwd="notebooks")
    if args.update_checks:
        copy_checked_outputs(target, source)
    print(target)


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def copy_checked_outputs(executed: Path, source: Path) -> None:
    """Store the outputs of the ``# NBVAL_CHECK_OUTPUT`` cells of an executed notebook in its
    source (with nbstripout's ``keep_output``), as the reference nbval compares against."""
    import nbformat

    ran, src = nbformat.read(executed, as_version=4), nbformat.read(source, as_version=4)
    executed_cells = {c.source: c for c in ran.cells if c.cell_type == "code"}
    for cell in src.cells:
        if cell.cell_type == "code" and cell.source.startswith(CHECK_MARK):
            cell.outputs = executed_cells[cell.source].outputs
            cell.execution_count = executed_cells[cell.source].execution_count  # nbval needs it
            cell.metadata["keep_output"] = True
    nbformat.write(src, source)


def cmd_step_benchmark(args: argparse.Namespace) -> None:
    from seamlib.bench import train_step_benchmark

    print(json.dumps(train_step_benchmark(args.width, args.batch, args.size, args.out), indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seam", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("data", cmd_data), ("difficulty", cmd_difficulty),
                       ("datasheet", cmd_datasheet), ("train", cmd_train)):
        p = sub.add_parser(name, help=func.__doc__)
        p.add_argument("--profile", choices=PROFILES_NAMES, default="proxy")
        p.add_argument("--data-root", default=None, help="override data.root")
        p.add_argument("--set", action="append", default=[], metavar="STAGE.SETTING=VALUE")
        p.set_defaults(func=func)
    p = sub.add_parser("pretrain", help=cmd_pretrain.__doc__)
    p.add_argument("--profile", choices=PROFILES_NAMES, default="proxy")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.SETTING=VALUE")
    p.add_argument("--force", action="store_true", help="train even if the trunk exists")
    p.add_argument("--verify", action="store_true", help="only check the trunk's sha256")
    p.set_defaults(func=cmd_pretrain, data_root=None)
    p = sub.add_parser("notebook", help="execute notebooks/NAME.ipynb into results/PROFILE/")
    p.add_argument("name")
    p.add_argument("--profile", choices=PROFILES_NAMES, default="proxy")
    p.add_argument("--data-root", default=None)
    p.add_argument("--update-checks", action="store_true",
                   help="store the outputs of the NBVAL_CHECK_OUTPUT cells in the source")
    p.set_defaults(func=cmd_notebook)
    p = sub.add_parser("step-benchmark", help="time one SEAM training step on this machine")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=448)
    p.add_argument("--out", default=None, help="JSON file to write the measurement to")
    p.set_defaults(func=cmd_step_benchmark)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
