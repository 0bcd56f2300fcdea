"""What made a folder, in one place: each stage folder records the settings its outputs
depend on and refuses, or under ``seam run`` clears, a folder made with others.

* ``stage_settings`` / ``stage_key``: a pipeline stage's settings (its config sections, and
  the device where it computes with torch) and their hash chained with the stage before it.
* ``stage_record`` / ``record_stage``: ``<stage folder>/stage.json``, the key and settings a
  pipeline stage ran with, whether it completed, and its wall time.
* ``claim``: the record of a folder a command writes on its own (a training run, CAMs, a
  segmentation, the synthetic data).
* ``Manifest``: the per-image resume state of the crf and random walk stages.

Names in ``UNCHECKED`` are left out everywhere: they cannot change an output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from seamlib.errors import InputError, MissingFile
from seamlib.formats import atomic_write, sha256_file

# Where files go, how many processes or threads share the work, how often logs and
# checkpoints are written (a resume is exact), and whether decoded images are kept in memory.
UNCHECKED = frozenset({"out_dir", "num_workers", "cache_images", "log_every",
                       "checkpoint_every", "workers", "threads"})
MISSING = "(absent)"
MANIFEST = "manifest.json"
STAGE_RECORD = "stage.json"
RECORD = ("key", "settings", "complete")  # in stage.json beside the stage's timings


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"crf": {"workers": 2}, "device": "cpu"}`` -> ``{"crf.workers": 2, "device": "cpu"}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def as_json(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as they read back from the file (tuples become lists, paths strings)."""
    return json.loads(json.dumps(settings, default=str))


def checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` without the ``UNCHECKED`` names, at any depth."""
    return {k: checked(v) if isinstance(v, Mapping) else v for k, v in settings.items()
            if k not in UNCHECKED}


def stage_settings(cfg: Any, sections: Sequence[str], device: bool) -> dict[str, Any]:
    """What a pipeline stage's outputs depend on: its config sections and, where it computes
    with torch (``device``), the kind of device, as they read back from JSON."""
    from seamlib.device import device_kind  # torch, imported only where a key is made

    settings = {name: dataclasses.asdict(getattr(cfg, name)) for name in sections}
    if device:
        settings["device"] = device_kind(cfg.device)
    return as_json(checked(settings))


def stage_key(name: str, settings: Mapping[str, Any], previous: str) -> str:
    """Hash of a stage's settings chained with the previous stage's key: equal iff every
    setting up to this stage is equal."""
    text = json.dumps({"previous": previous, "stage": name, "settings": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_record(folder: Path) -> dict[str, Any]:
    """What a pipeline stage's folder records of its last run; {} where it has no record."""
    path = folder / STAGE_RECORD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not a stage record ({err}); delete that folder to redo "
                         "the stage") from err


def record_stage(folder: Path, state: Mapping[str, Any]) -> None:
    """Write a stage folder's record atomically."""
    atomic_write(folder / STAGE_RECORD, lambda t: t.write_text(json.dumps(state)))


def is_done(state: Mapping[str, Any], key: str) -> bool:
    """Whether a stage record says the stage completed with settings ``key``."""
    return state.get("key") == key and bool(state.get("complete"))


def changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any],
                     ignore: Collection[str] = UNCHECKED) -> list[tuple[str, Any, Any]]:
    """(dotted name, saved value, current value) of every setting that differs, in the
    order of ``current`` then the saved-only ones; names whose last part is in ``ignore``
    are not compared."""
    old, new = flatten(as_json(saved)), flatten(as_json(current))
    names = list(new) + [k for k in old if k not in new]
    return [(k, old.get(k, MISSING), new.get(k, MISSING)) for k in names
            if k.rsplit(".", 1)[-1] not in ignore and old.get(k, MISSING) != new.get(k, MISSING)]


def require_same(saved: Mapping[str, Any], current: Mapping[str, Any], where: str | Path,
                 what: str = "outputs", ignore: Collection[str] = UNCHECKED) -> None:
    """Raise an error naming the first setting that differs between the settings a folder
    was made with (``saved``, recorded at ``where``) and ``current``."""
    changed = changed_settings(saved, current, ignore)
    if changed:
        name, old, new = changed[0]
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise InputError(f"{where} holds {what} made with other settings: {name} was {old!r}, "
                         f"now {new!r}{more}; use another folder or delete that one")


def claim(path: str | Path, settings: Mapping[str, Any], what: str = "outputs",
          ignore: Collection[str] = UNCHECKED, write: bool = True) -> bool:
    """Tie the folder of ``path`` (a JSON file) to ``settings``: record them if the file is
    absent (unless ``write`` is False) and return True; return False if it holds the same
    settings; else raise an error naming the first setting that differs."""
    path = Path(path)
    if not path.is_file():
        if write:
            atomic_write(path, lambda t: t.write_text(json.dumps(as_json(settings), indent=1)))
        return True
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not a settings record ({err}); delete that folder") from err
    require_same(saved, settings, path.parent, what, ignore)
    return False


def cam_hashes(cam_dir: Path, ids: Sequence[str], list_path: Path) -> dict[str, str]:
    """{id: sha256 of its CAM file}; an error naming the folder if any is missing."""
    missing = [i for i in ids if not (cam_dir / f"{i}.npz").is_file()]
    if missing:
        raise MissingFile(f"{cam_dir}: no CAM file for {len(missing)} ids of {list_path}, "
                          f"e.g. {missing[:3]}; run the cams stage")
    return {i: sha256_file(cam_dir / f"{i}.npz") for i in ids}


def require_ours(out: Path, record: str = MANIFEST) -> None:
    """Refuse an output folder that holds files but not ``record``: seam did not make it, so
    its files are neither overwritten nor taken for outputs."""
    names = [p.name for p in out.iterdir() if not p.name.startswith(".")
             and p.name not in (record, STAGE_RECORD)] if out.is_dir() else []
    if names and not (out / record).exists():
        raise InputError(f"{out} holds files seam did not make (no {record}; e.g. {names[0]}); "
                         "use another folder or delete that one")


class Manifest:
    """The resume state of a per-image output folder: its settings and, per finished image,
    the sha256 of the input it was made from; an image is redone when its input changed."""

    def __init__(self, out: Path, settings: dict, inputs: dict[str, str], suffix: str = ".png",
                 every: int = 100) -> None:
        self.path, self.settings, self.inputs, self.every = out / MANIFEST, settings, inputs, every
        require_ours(out)
        self.done = self._load()
        self.todo = [i for i in inputs
                     if self.done.get(i) != inputs[i] or not (out / f"{i}{suffix}").is_file()]
        for image_id in self.todo:
            self.done.pop(image_id, None)
        self._count = 0
        if not self.path.exists():
            self.save()  # the folder is ours from its first image on

    def _load(self) -> dict[str, str]:
        """{id: input sha256} recorded so far; an error naming the first differing setting
        when the folder was made with others."""
        if not self.path.exists():
            return {}
        saved = json.loads(self.path.read_text())
        require_same(saved.get("settings", {}), self.settings, self.path.parent)
        return dict(saved["inputs"])

    def finished(self, image_id: str) -> None:
        """Record that ``image_id``'s output is written; save every ``every`` images."""
        self.done[image_id] = self.inputs[image_id]
        self._count += 1
        if self._count % self.every == 0:
            self.save()

    def save(self) -> None:
        """Write the settings and the input hash of every finished image, atomically."""
        text = json.dumps({"settings": as_json(self.settings),
                           "inputs": dict(sorted(self.done.items()))}, indent=1)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))
