"""Output manifests of the per-image stages (crf, random walk): the settings a folder was made
with and, per image, the sha256 of the input it was made from, so a resumed run redoes exactly
the images whose input changed and never mixes settings in one folder."""

from __future__ import annotations

import json
from pathlib import Path

from seamlib.data.datasets import VOCImages
from seamlib.errors import MissingFile
from seamlib.formats import atomic_write, sha256_file
from seamlib.runs import as_json, require_same

MANIFEST = "manifest.json"


def load_manifest(path: Path, settings: dict) -> dict[str, str]:
    """{id: input sha256} of the outputs recorded in ``path``; an error naming the first
    differing setting when the folder was made with others."""
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    require_same(saved.get("settings", {}), settings, path.parent)
    return dict(saved["inputs"])


def write_manifest(path: Path, settings: dict, done: dict[str, str]) -> None:
    """Record the settings and the input hash of every finished image, atomically."""
    text = json.dumps({"settings": as_json(settings), "inputs": dict(sorted(done.items()))},
                      indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def cam_hashes(cam_dir: Path, images: VOCImages) -> dict[str, str]:
    """{id: sha256 of its CAM file} for a list; an error naming the folder if any is missing."""
    missing = [i for i in images.ids if not (cam_dir / f"{i}.npz").is_file()]
    if missing:
        raise MissingFile(f"{cam_dir}: no CAM file for {len(missing)} ids of "
                                f"{images.list_path}, e.g. {missing[:3]}; run the cams stage")
    return {i: sha256_file(cam_dir / f"{i}.npz") for i in images.ids}


class Manifest:
    """The resume state of one output folder: which images still need work, given the sha256
    of each image's input; ``finished`` records one, saving every ``every`` images."""

    def __init__(self, out: Path, settings: dict, inputs: dict[str, str], suffix: str = ".png",
                 every: int = 100) -> None:
        self.path, self.settings, self.inputs, self.every = out / MANIFEST, settings, inputs, every
        self.done = load_manifest(self.path, settings)
        self.todo = [i for i in inputs
                     if self.done.get(i) != inputs[i] or not (out / f"{i}{suffix}").is_file()]
        for image_id in self.todo:
            self.done.pop(image_id, None)
        self._count = 0

    def finished(self, image_id: str) -> None:
        """Record that ``image_id``'s output is written."""
        self.done[image_id] = self.inputs[image_id]
        self._count += 1
        if self._count % self.every == 0:
            self.save()

    def save(self) -> None:
        write_manifest(self.path, self.settings, self.done)
