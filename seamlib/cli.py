"""The ``seam`` command: every pipeline stage and the notebooks, for a profile.

    seam data --profile proxy            # generate, download or only check (data.prepare)
    seam difficulty --profile proxy      # plain-CAM baseline numbers + datasheet
    seam train --profile proxy --set train.epochs=2
    seam run --profile proxy --until random_walk  # the pipeline, stages in order
    seam cams --profile proxy            # PCM CAMs of data.cam_list from the trained weights
    seam evaluate runs/proxy/cams_val --list val --out results.json
    seam pretrain --profile proxy        # verify the proxy trunk's sha256 (--force: retrain)
    seam notebook 01_data --profile proxy
    seam compare --profile proxy --seeds 0 1 2   # SEAM vs baseline, mean +- std over seeds
    seam step-benchmark --width 1.0 --batch 2 --size 448
    seam retrain --profile proxy --labels runs/proxy/rw_labels
    seam segment --profile proxy --weights runs/proxy/segment/model.pth --list val --out DIR
    seam export --profile voc --pred DIR --list test --out runs/voc/submission
    seam crf --profile proxy --cams runs/proxy/cams_train_aug --out runs/proxy/crf
    seam affinity --profile proxy --labels runs/proxy/crf
    seam random-walk --profile proxy --cams DIR --weights runs/proxy/aff/model.pth --out DIR
    seam random-walk-sweep runs/proxy/pipeline/baseline_seed0 --profile proxy --out rw.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from seamlib.config import DEFAULT_PROFILE, PROFILES_NAMES, Config, load_config
from seamlib.io import atomic_write

RESULTS = Path("results")


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``["train.epochs=2", "data.root=x"]`` -> ``{"train": {"epochs": "2"}, "data": {...}}``;
    the text is converted to each setting's declared type by ``config.apply_overrides``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected STAGE.SETTING=VALUE, e.g. train.epochs=2")
        out.setdefault(stage, {})[name] = raw
    return out


def config_from(args: argparse.Namespace) -> Config:
    """The profile's config with the command's ``--set``, ``--data-root`` and ``--device``;
    a setting that does not parse stops the command with its message."""
    try:
        cfg = load_config(args.profile, parse_overrides(args.set), args.data_root)
    except ValueError as err:
        raise SystemExit(f"seam {args.command}: {err}") from err
    if getattr(args, "device", None):
        from seamlib.device import resolve_device

        try:
            resolve_device(args.device)  # fail now, not after the data is loaded
        except ValueError as err:
            raise SystemExit(f"seam {args.command}: {err}") from err
        cfg.device = args.device
    return cfg


def cmd_data(args: argparse.Namespace) -> None:
    """generate, download or only check (data.prepare) the dataset; validate, cache labels"""
    from seamlib.data.prepare import prepare_data

    print(prepare_data(config_from(args)))


def cmd_difficulty(args: argparse.Namespace) -> None:
    """train the plain-CAM baseline, measure mAP and CAM mIoU, write the datasheet"""
    from seamlib.baseline import measure_difficulty
    from seamlib.data.datasheet import write_datasheet

    cfg = config_from(args)
    command = " ".join(["seam", *sys.argv[1:]])
    result = measure_difficulty(cfg, command)
    out = Path(args.out or RESULTS / cfg.profile / "difficulty.json")
    atomic_write(out, lambda t: t.write_text(json.dumps(result, indent=1)))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}, indent=1))
    if args.out is None:  # a diagnostic run elsewhere leaves the datasheet alone
        print(write_datasheet(cfg.data.root, out.parent, result))


def cmd_probe(args: argparse.Namespace) -> None:
    """diagnose fine-tuning: frozen-trunk linear probe vs fc8 alone under the profile's optimiser"""
    from seamlib.probe import probe

    cfg = config_from(args)
    result = probe(cfg, " ".join(["seam", *sys.argv[1:]]))
    out = Path(args.out or RESULTS / cfg.profile / "diagnostics" / "probe.json")
    atomic_write(out, lambda t: t.write_text(json.dumps(result, indent=1)))
    print(json.dumps(result, indent=1))
    print(f"-> {out}")


def cmd_datasheet(args: argparse.Namespace) -> None:
    """write results/PROFILE/datasheet.md from the data (and difficulty.json if present)"""
    from seamlib.data.datasheet import write_datasheet

    cfg = config_from(args)
    path = RESULTS / cfg.profile / "difficulty.json"
    difficulty = json.loads(path.read_text()) if path.exists() else None
    print(write_datasheet(cfg.data.root, RESULTS / cfg.profile, difficulty))


def cmd_train(args: argparse.Namespace) -> None:
    """train SEAM; writes TRAIN.OUT_DIR/model.pth (resumes an interrupted run)"""
    from seamlib.train import train

    print(train(config_from(args)))


def cmd_cams(args: argparse.Namespace) -> None:
    """write the CAMs of a list from trained SEAM weights (PCM output, or --raw-cam)"""
    from seamlib.cams import cams_stage

    cfg = config_from(args)
    print(cams_stage(cfg, args.weights, args.list, args.out, use_pcm=not args.raw_cam))


def cmd_evaluate(args: argparse.Namespace) -> None:
    """score a CAM folder (npz) or label-PNG folder against the masks of a list"""
    from seamlib.evaluate import evaluate

    result = evaluate(args.pred_dir, config_from(args).data.root, args.list, args.kind,
                      args.threshold, args.mask_dir)
    if args.out:
        text = json.dumps(result, indent=1, allow_nan=False)
        atomic_write(Path(args.out), lambda t: t.write_text(text))
    keys = ("kind", "list", "images", "threshold", "miou", "mfp", "mfn", "absent")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=1))


def cmd_run(args: argparse.Namespace) -> None:
    """the whole pipeline (data ... evaluate) in one run folder; unchanged stages are skipped"""
    from seamlib.pipeline import run_pipeline

    cfg = config_from(args)
    print(json.dumps(run_pipeline(cfg, args.run_dir, args.until, args.train_from),
                     indent=1))


def cmd_pipeline_report(args: argparse.Namespace) -> None:
    """tabulate finished `seam run` folders (NAME=DIR ...) into OUT.json and OUT.md"""
    from seamlib.pipeline import pipeline_report, write_pipeline_report

    runs = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"run {item!r}: expected NAME=DIR, e.g. seam=runs/proxy/seam")
        runs[name] = Path(folder)
    report = pipeline_report(runs, shlex.join(["seam", *sys.argv[1:]]), args.setup)
    print(write_pipeline_report(report, Path(args.out)).read_text())


def cmd_pretrain(args: argparse.Namespace) -> None:
    """verify the profile's pretrained trunk, or train it when absent or asked (--force)."""
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
    """execute notebooks/NAME.ipynb into results/PROFILE/"""
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


def cmd_compare(args: argparse.Namespace) -> None:
    """SEAM vs the plain-CAM baseline over seeds -> results/PROFILE/seam_vs_baseline.*"""
    from seamlib.compare import compare

    cfg = config_from(args)
    report = compare(cfg, args.seeds, " ".join(["seam", *sys.argv[1:]]), RESULTS / cfg.profile,
                     workers=args.workers, extend=args.extend)
    print("\n".join(report["findings"]))
    print(RESULTS / cfg.profile / "seam_vs_baseline.md")


def cmd_step_benchmark(args: argparse.Namespace) -> None:
    """time one SEAM training step on this machine"""
    from seamlib.bench import train_step_benchmark

    print(json.dumps(train_step_benchmark(args.width, args.batch, args.size, args.out), indent=1))


# --- segment stage commands: retrain on pseudo labels, predict a list, pack VOC test results ---
def cmd_retrain(args: argparse.Namespace) -> None:
    """train DeepLab-LargeFOV on the pseudo-label PNGs of seg.train_list"""
    from seamlib.segment import retrain

    print(retrain(config_from(args), args.labels, args.out))


def cmd_segment(args: argparse.Namespace) -> None:
    """multi-scale + flip (+CRF) segmentation PNGs of a list with trained weights"""
    from seamlib.segment import segment_stage

    print(segment_stage(config_from(args), args.weights, args.list, args.out))


def cmd_export(args: argparse.Namespace) -> None:
    """pack a list's segmentation PNGs as a VOC evaluation-server tar.gz"""
    from seamlib.data.lists import list_path
    from seamlib.data.voc import read_list
    from seamlib.submission import export_submission

    ids = read_list(list_path(config_from(args).data.root, args.list))
    print(export_submission(args.pred, ids, args.out))


def add_segment_commands(sub: Any) -> None:
    """``seam retrain``, ``seam segment`` and ``seam export``."""
    options = {cmd_retrain: [("--labels", {"required": True, "help": "pseudo-label PNG folder"}),
                             ("--out", {"default": None, "help": "default seg_train.out_dir"})],
               cmd_segment: [("--weights", {"required": True}), ("--list", {"default": "val"}),
                             ("--out", {"required": True, "help": "PNG folder"})],
               cmd_export: [("--pred", {"required": True, "help": "PNG folder"}),
                            ("--list", {"default": "test"}),
                            ("--out", {"required": True, "help": "folder for results.tar.gz"})]}
    for func, args in options.items():
        p = sub.add_parser(func.__name__[len("cmd_"):], help=func.__doc__)
        add_config_args(p, device=func is not cmd_export)
        for flag, kw in args:
            p.add_argument(flag, **kw)
        p.set_defaults(func=func)


# --- pseudo-label stage commands: CRF label maps, AffinityNet, random walk ---
def cmd_crf(args: argparse.Namespace) -> None:
    """dense-CRF label PNGs of a list from its CAMs (AffinityNet's labels, or --kind)"""
    from seamlib.crf import crf_stage

    cfg = config_from(args)
    print(crf_stage(args.cams, cfg.data.root, args.list or cfg.data.train_list, args.out,
                    cfg.crf, kind=args.kind))


def cmd_affinity(args: argparse.Namespace) -> None:
    """train AffinityNet on data.train_list and the CRF label PNGs of --labels"""
    from seamlib.affinity import train_affinity

    cfg = config_from(args)
    print(train_affinity(cfg, args.labels, args.out or cfg.aff_train.out_dir))


def cmd_random_walk(args: argparse.Namespace) -> None:
    """random-walk pseudo-label PNGs of a list from its CAMs and AffinityNet weights"""
    from seamlib.random_walk import random_walk_stage

    cfg = config_from(args)
    print(random_walk_stage(args.cams, args.weights, cfg.data.root,
                            args.list or cfg.data.train_list, args.out, cfg))


def cmd_random_walk_sweep(args: argparse.Namespace) -> None:
    """score a run's random walk over a grid of logt and alpha (its CAMs and AffinityNet)"""
    from seamlib.bench import hardware
    from seamlib.random_walk import random_walk_sweep

    cfg = config_from(args)
    result = random_walk_sweep(args.run_dir, cfg, args.logt, args.alpha, args.list)
    result.update(command=" ".join(["seam", *sys.argv[1:]]), hardware=hardware())
    atomic_write(Path(args.out), lambda t: t.write_text(json.dumps(result, indent=1)))
    for row in result["rows"]:
        print(f"logt {row['logt']} alpha {row['alpha']:g}: mIoU {row['miou']:.1%}")
    print(f"best: {result['best']} -> {args.out}")


def add_pseudo_label_commands(sub: Any) -> None:
    """``seam crf``, ``seam affinity`` and ``seam random-walk``."""
    cams = ("--cams", {"required": True, "help": "CAM folder (<id>.npz) of the list"})
    a_list = ("--list", {"default": None, "help": "image list (default: data.train_list)"})
    options = {cmd_crf: [cams, a_list, ("--out", {"required": True, "help": "PNG folder"}),
                         ("--kind", {"choices": ("affinity", "threshold"),
                                     "default": "affinity"})],
               cmd_affinity: [("--labels", {"required": True, "help": "CRF label PNG folder"}),
                              ("--out", {"default": None, "help": "default aff_train.out_dir"})],
               cmd_random_walk: [cams, ("--weights", {"required": True,
                                                      "help": "AffinityNet model.pth"}),
                                 a_list, ("--out", {"required": True, "help": "PNG folder"})]}
    for func, args in options.items():
        p = sub.add_parser(func.__name__[len("cmd_"):].replace("_", "-"), help=func.__doc__)
        add_config_args(p, device=func is not cmd_crf)
        for flag, kw in args:
            p.add_argument(flag, **kw)
        p.set_defaults(func=func)
    p = sub.add_parser("random-walk-sweep", help=cmd_random_walk_sweep.__doc__)
    add_config_args(p, device=True)
    p.add_argument("run_dir", help="a `seam run` folder with cams/ and affinity/model.pth")
    p.add_argument("--logt", type=int, nargs="+", default=[0, 1, 2, 3, 6])
    p.add_argument("--alpha", type=float, nargs="+", default=[2.0, 3.0, 4.0, 6.0])
    p.add_argument("--list", default=None, help="list scored (default: data.cam_list)")
    p.add_argument("--out", required=True, help="JSON file to write the grid to")
    p.set_defaults(func=cmd_random_walk_sweep)


def add_config_args(p: argparse.ArgumentParser, device: bool) -> None:
    """--profile, --data-root, --set and (for stages that run a network) --device."""
    p.add_argument("--profile", choices=PROFILES_NAMES, default=DEFAULT_PROFILE)
    p.add_argument("--data-root", default=None, help="override data.root")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.SETTING=VALUE",
                   help="override a setting, parsed to its type (e.g. loss.use_er=false, "
                        "data.resize_long=128,224, model.weights=none); repeatable")
    if device:
        p.add_argument("--device", default=None,
                       help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N; "
                            "default: the config's device (auto)")


def build_parser() -> argparse.ArgumentParser:
    """The ``seam`` argument parser: one subcommand per stage, each with a one-line help."""
    parser = argparse.ArgumentParser(prog="seam", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("difficulty", help=cmd_difficulty.__doc__)
    add_config_args(p, device=True)
    p.add_argument("--out", default=None, help="JSON file for a diagnostic run (default: "
                   "results/PROFILE/difficulty.json, and the datasheet is rewritten)")
    p.set_defaults(func=cmd_difficulty)
    for name, func, device in (("data", cmd_data, False), ("datasheet", cmd_datasheet, False),
                               ("train", cmd_train, True)):
        p = sub.add_parser(name, help=func.__doc__)
        add_config_args(p, device)
        p.set_defaults(func=func)
    p = sub.add_parser("cams", help=cmd_cams.__doc__)
    add_config_args(p, device=True)
    p.add_argument("--weights", default=None,
                   help="SEAM checkpoint (default: TRAIN.OUT_DIR/model.pth)")
    p.add_argument("--list", default=None, help="image list (default: data.cam_list)")
    p.add_argument("--out", default=None,
                   help="output folder (default: TRAIN.OUT_DIR/cams_LIST, cams_raw_LIST)")
    p.add_argument("--raw-cam", action="store_true",
                   help="the classifier's fc8 CAM instead of the PCM-refined one")
    p.set_defaults(func=cmd_cams)
    p = sub.add_parser("evaluate", help=cmd_evaluate.__doc__)
    p.add_argument("pred_dir", help="folder of <id>.npz CAMs or <id>.png label maps")
    p.add_argument("--list", default="val", help="image list to score (default: val)")
    add_config_args(p, device=False)
    p.add_argument("--kind", choices=("auto", "cam", "png"), default="auto")
    p.add_argument("--threshold", type=float, default=None,
                   help="CAM background threshold (default: the best of a sweep)")
    p.add_argument("--mask-dir", default="SegmentationClass",
                   help="ground-truth folder under data.root (SegmentationClassAug for train_aug)")
    p.add_argument("--out", default=None, help="JSON file to write the full result to")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("probe", help=cmd_probe.__doc__)
    add_config_args(p, device=False)
    p.add_argument("--out", default=None,
                   help="JSON file (default: results/PROFILE/diagnostics/probe.json)")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("run", help=cmd_run.__doc__)
    add_config_args(p, device=True)
    p.add_argument("--until", default=None, help="last stage to run (default: evaluate)")
    p.add_argument("--run-dir", default=None, help="run folder (default: runs/PROFILE)")
    p.add_argument("--train-from", default=None, metavar="DIR",
                   help="adopt a finished `seam train` / `seam compare` run as the train stage "
                        "(its settings must equal this config's)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("pipeline-report", help=cmd_pipeline_report.__doc__)
    p.add_argument("runs", nargs="+", metavar="NAME=DIR")
    p.add_argument("--out", required=True, help="output path without suffix")
    p.add_argument("--setup", default="", help="how the runs were run (threads, cores, ...)")
    p.set_defaults(func=cmd_pipeline_report)
    p = sub.add_parser("pretrain", help=cmd_pretrain.__doc__)
    add_config_args(p, device=False)
    p.add_argument("--force", action="store_true", help="train even if the trunk exists")
    p.add_argument("--verify", action="store_true", help="only check the trunk's sha256")
    p.set_defaults(func=cmd_pretrain)
    p = sub.add_parser("notebook", help=cmd_notebook.__doc__)
    p.add_argument("name")
    p.add_argument("--profile", choices=PROFILES_NAMES, default=DEFAULT_PROFILE)
    p.add_argument("--data-root", default=None)
    p.add_argument("--update-checks", action="store_true",
                   help="store the outputs of the NBVAL_CHECK_OUTPUT cells in the source")
    p.set_defaults(func=cmd_notebook)
    p = sub.add_parser("compare", help=cmd_compare.__doc__)
    add_config_args(p, device=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=1,
                   help="runs trained at once, each in its own process with an equal share of "
                        "the CPU threads (default 1)")
    p.add_argument("--extend", action="store_true",
                   help="keep the other seeds' runs of results/PROFILE/seam_vs_baseline.json "
                        "(made with the same settings) and add these seeds to it")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("step-benchmark", help=cmd_step_benchmark.__doc__)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=448)
    p.add_argument("--out", default=None, help="JSON file to write the measurement to")
    p.set_defaults(func=cmd_step_benchmark)
    add_segment_commands(sub)
    add_pseudo_label_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    from seamlib.device import keep_freed_memory

    args = build_parser().parse_args(argv)
    keep_freed_memory()  # fewer page faults per step, the same numbers (seamlib.device)
    args.func(args)


if __name__ == "__main__":
    main()
