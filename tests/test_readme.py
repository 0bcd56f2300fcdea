"""Every `seam` and `torchrun ... -m seamlib.cli` command in README.md's bash blocks parses, and
every measured number its Results section quotes is in a committed table."""

import re
import shlex
from pathlib import Path

from seamlib.cli import build_parser, config_from

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])")  # 39.9, not 2.14.1


def readme_commands() -> list[list[str]]:
    """argv of each documented command (``$S`` expanded, comments and placeholders dropped)."""
    env, commands = {}, []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("S="):
                env["S"] = shlex.split(line[2:])[0]
                continue
            if line.startswith("torchrun"):
                line = "seam " + line.split("-m seamlib.cli", 1)[1]
            if line.startswith("seam ") and "--profile P " not in line:
                commands.append(shlex.split(line.replace("$S", env.get("S", "")))[1:])
    return commands


def test_readme_commands_parse():
    commands = readme_commands()
    assert len(commands) > 20
    for argv in commands:
        args = build_parser().parse_args(argv)
        if getattr(args, "device", None) == "cuda":
            args.device = None  # the flag parsed; no CUDA is needed to check the rest
        if args.command != "notebook" and hasattr(args, "set"):
            config_from(args)  # --set values parse to their settings' types


def test_every_number_of_the_results_section_is_in_a_committed_table():
    text = README.read_text()
    results = text[text.index("## Results"):text.index("## Quickstart")]
    tables = [*(REPO / "results/proxy/tables").glob("*.md"), REPO / "study/reported_voc.csv"]
    recorded = set(DECIMAL.findall(" ".join(p.read_text() for p in tables)))
    quoted = DECIMAL.findall(results)
    assert len(quoted) > 50
    assert sorted(set(quoted) - recorded, key=float) == []
