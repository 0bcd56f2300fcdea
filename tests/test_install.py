"""The install: license metadata as setuptools >= 77 reads it (no deprecation warnings), and
torch from PyTorch's CPU-only wheels on request."""

from __future__ import annotations

import subprocess
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_the_license_is_an_spdx_expression_with_its_file():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # a table here is deprecated (3 warnings)
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert project["build-system"]["requires"] == ["setuptools>=77"]


def test_make_install_takes_torch_from_the_index_it_is_given():
    """make install TORCH_INDEX=... installs torch and torchvision from that index first (the
    CPU-only wheels for a machine without a GPU), within the project's pins."""
    index = "https://download.pytorch.org/whl/cpu"
    plan = subprocess.run(["make", "-n", "-B", "install", f"TORCH_INDEX={index}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    plan = plan.replace("\\\n  ", "")  # the recipe's continued lines, joined
    assert f"--index-url {index} 'torch>=2.2,<=2.14.1' 'torchvision>=0.17,<=0.29.1'" in plan
    assert plan.index(index) < plan.index("pip install --quiet -e")
    default = subprocess.run(["make", "-n", "-B", "install"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    assert "if [ -n \"\" ]" in default  # no index: PyPI's default build
