"""Which settings made a folder: every stage records them in its output folder when it starts
and checks them when it resumes or reuses the folder, so one folder never mixes the outputs of
two settings. The one check every stage uses: ``claim``."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from seamlib.errors import InputError
from seamlib.formats import atomic_write

MISSING = "(absent)"


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}, "device": "cpu"}`` -> ``{"train.lr": 0.1, "device": "cpu"}``."""
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


def changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any],
                     ignore: Collection[str] = ()) -> list[tuple[str, Any, Any]]:
    """(dotted name, saved value, current value) of every setting that differs, in the
    order of ``current`` then the saved-only ones; names whose last part is in ``ignore``
    are not compared."""
    old, new = flatten(as_json(saved)), flatten(as_json(current))
    names = list(new) + [k for k in old if k not in new]
    return [(k, old.get(k, MISSING), new.get(k, MISSING)) for k in names
            if k.rsplit(".", 1)[-1] not in ignore and old.get(k, MISSING) != new.get(k, MISSING)]


def require_same(saved: Mapping[str, Any], current: Mapping[str, Any], where: str | Path,
                 what: str = "outputs", ignore: Collection[str] = ()) -> None:
    """Raise ValueError naming the first setting that differs between the settings a folder
    was made with (``saved``, recorded at ``where``) and ``current``."""
    changed = changed_settings(saved, current, ignore)
    if changed:
        name, old, new = changed[0]
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise InputError(f"{where} holds {what} made with other settings: {name} was {old!r}, "
                         f"now {new!r}{more}; use another folder or delete that one")


def claim(path: str | Path, settings: Mapping[str, Any], what: str = "outputs",
          ignore: Collection[str] = (), write: bool = True) -> bool:
    """Tie the folder of ``path`` (a JSON file) to ``settings``: record them if the file is
    absent (unless ``write`` is False) and return True; return False if it holds the same
    settings; else raise ValueError naming the first setting that differs."""
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
