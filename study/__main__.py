"""The study behind notebooks 04 and 05, on the command line.

    python -m study reproduce --profile proxy --workers 2   # every run behind the tables
    python -m study reproduce --profile proxy --dry-run     # what remains, and its time
    python -m study summary --profile proxy                 # results/proxy/summary.md
    python -m study notebook 04_ablations --profile proxy   # results/proxy/04_ablations.ipynb

A bad input ends with one line and exit status 2, as with ``seam``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seamlib.cli import add_config_args, config_from, run_command
from seamlib.config import DEFAULT_PROFILE, PROFILES_NAMES
from seamlib.errors import InputError


def cmd_reproduce(args: argparse.Namespace) -> None:
    """every run behind notebooks 04 and 05, what remains and its time, run on N workers"""
    from study.reproduce import reproduce

    summary = reproduce(config_from(args), args.workers, args.seeds, dry_run=args.dry_run)
    if summary["failed"]:
        first = summary["failed"][0]
        raise InputError(f"{len(summary['failed'])} runs failed, the first: {first['job']}: "
                         f"{first['error']}")


def cmd_summary(args: argparse.Namespace) -> None:
    """link every table and figure of results/PROFILE in results/PROFILE/summary.md"""
    from study.summary import write_summary

    cfg = config_from(args)
    print(write_summary(cfg, Path(args.out or Path("results") / cfg.profile)))


def cmd_notebook(args: argparse.Namespace) -> None:
    """execute notebooks/NAME.ipynb into results/PROFILE/ (from any directory)"""
    from study.notebooks import run_notebook

    print(run_notebook(args.name, args.profile, not args.no_train, args.data_root,
                       args.update_checks))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reproduce", help=cmd_reproduce.__doc__)
    add_config_args(p, device=True)
    p.add_argument("--workers", type=int, default=1,
                   help="runs at once, the CPU threads shared between them (default: 1; on a "
                        "CPU one per core is fastest)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds of every variant (default: the plan's, study.reproduce.SEEDS)")
    p.add_argument("--dry-run", action="store_true",
                   help="only list the remaining runs and their estimated time")
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("summary", help=cmd_summary.__doc__)
    add_config_args(p, device=False)
    p.add_argument("--out", default=None, help="results folder (default: results/PROFILE)")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("notebook", help=cmd_notebook.__doc__, description=cmd_notebook.__doc__)
    p.add_argument("name", help="notebook name, e.g. 01_data")
    p.add_argument("--profile", choices=PROFILES_NAMES, default=DEFAULT_PROFILE,
                   help=f"run profile (default: {DEFAULT_PROFILE})")
    p.add_argument("--data-root", default=None, help="override data.root")
    p.add_argument("--no-train", action="store_true",
                   help="render from the runs recorded under results/PROFILE/runs/ only "
                        "(notebooks with a `train` parameter: 04, 05)")
    p.add_argument("--update-checks", action="store_true",
                   help="store the outputs of the NBVAL_CHECK_OUTPUT cells in the source")
    p.set_defaults(func=cmd_notebook)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    run_command(args, "python -m study")


if __name__ == "__main__":
    main()
