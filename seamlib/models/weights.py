"""Pretrained weights: the authors' released key names, MXNet .params files, one-call loading.

Three kinds of file load into a SEAMNet with :func:`load_weights`:

* ImageNet backbone weights: the original ResNet38 MXNet file (read here without mxnet), its
  PyTorch conversion (``.pth`` with the released flat names), or a torchvision ResNet-50 state
  dict. The SEAM head (fc8, f8_3, f8_4, pcm.f9) is new and stays at its initialisation; the
  ImageNet classifier in the file (linear1000, fc, a 1000-class fc8) is ignored.
* SEAM checkpoints: the authors' ``resnet38_SEAM.pth`` or a file written by
  :func:`save_released`; every tensor must match.
* Our own ``SEAMNet.state_dict()`` (keys ``backbone.*``), bare or inside a training checkpoint.

Training with frozen BatchNorm or stem (the reference ``voc`` settings) needs such a file:
:func:`require_weights` refuses to start without one and says where to get it.

Released files name the trunk without the ``backbone.`` prefix and the PCM embedding ``f9``
instead of ``pcm.f9``; :func:`to_released` / :func:`from_released` convert between the two.
A network with other new layers (AffinityNet) names its own table in ``key_table``; its
released checkpoints (``resnet38_aff*.pth``) then load the same way.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seamlib.config import IMAGENET_WEIGHTS, ModelConfig
from seamlib.errors import InputError, MissingFile
from seamlib.formats import atomic_write, sha256_file

# (our prefix, released prefix), most specific first; the last row is the catch-all for the
# trunk. Head prefixes are the same in both namings except the PCM's f9.
KEY_TABLE: tuple[tuple[str, str], ...] = (
    ("pcm.f9.", "f9."),
    ("fc8.", "fc8."),
    ("f8_3.", "f8_3."),
    ("f8_4.", "f8_4."),
    ("backbone.", ""),
)
BACKBONE = "backbone."
PCM_PREFIXES = ("f8_3.", "f8_4.", "pcm.")  # present only in SEAM checkpoints
# ImageNet classifiers (our names): ResNet38's linear1000, torchvision's fc, a 1000-class fc8.
CLASSIFIER_PREFIXES = ("backbone.linear1000.", "backbone.fc.", "fc8.")
AFFINITY_KEY = ".f8_5.weight"  # only AffinityNet has this layer (under any naming)
KINDS = ("auto", "seam", "full", "imagenet")
KIND_TITLES = {"seam": "SEAM checkpoint", "full": "full checkpoint",
               "imagenet": "ImageNet backbone weights"}
# What a weights file must be, for the errors of files that are not.
WEIGHTS_KINDS = "PyTorch state dict (.pth, as seam train_cam writes) or an MXNet .params file"


def _is_bookkeeping(key: str) -> bool:
    """BatchNorm's step counter: absent from files saved by old PyTorch, never required."""
    return key.endswith("num_batches_tracked")


# --------------------------------------------------------------------------------------------
# Key names


def key_table(model: nn.Module) -> tuple[tuple[str, str], ...]:
    """The model's (our prefix, released prefix) table: its ``key_table``, else SEAMNet's."""
    return getattr(model, "key_table", KEY_TABLE)


def key_to_released(key: str, table: tuple[tuple[str, str], ...] = KEY_TABLE) -> str:
    """Our state-dict key -> the released flat name (``backbone.b2.x`` -> ``b2.x``)."""
    for ours, released in table:
        if key.startswith(ours):
            name = released + key[len(ours):]
            if key_from_released(name, table) != key:  # e.g. a trunk module called "f9"
                raise InputError(f"key {key!r} has no unambiguous released name ({name!r})")
            return name
    raise InputError(f"key {key!r} is not a SEAMNet key (nor one of the network's key table); "
                     f"expected one of the prefixes {[ours for ours, _ in table]}")


def key_from_released(name: str, table: tuple[tuple[str, str], ...] = KEY_TABLE) -> str:
    """Released flat name -> our state-dict key (``f9.weight`` -> ``pcm.f9.weight``)."""
    for ours, released in table:
        if name.startswith(released):
            return ours + name[len(released):]
    raise AssertionError("unreachable: the last key table row matches every name")


def to_released(state_dict: Mapping[str, torch.Tensor],
                table: tuple[tuple[str, str], ...] = KEY_TABLE) -> dict[str, torch.Tensor]:
    """Rename a state dict (SEAMNet's by default) to the authors' released names."""
    return {key_to_released(k, table): v for k, v in state_dict.items()}


def from_released(state_dict: Mapping[str, torch.Tensor],
                  table: tuple[tuple[str, str], ...] = KEY_TABLE) -> dict[str, torch.Tensor]:
    """Rename a state dict with the released names to our keys (SEAMNet's by default)."""
    return {key_from_released(k, table): v for k, v in state_dict.items()}


# --------------------------------------------------------------------------------------------
# MXNet NDArray list files (mx.nd.save / .params), read with struct and numpy

MX_LIST_MAGIC = 0x112
MX_V1_MAGIC = 0xF993FAC8  # int64 shape
MX_V2_MAGIC = 0xF993FAC9  # + storage type
MX_V3_MAGIC = 0xF993FACA  # numpy shape semantics
MX_DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8"}
MX_HEADER = struct.pack("<Q", MX_LIST_MAGIC)


class _Reader:
    """Little-endian reads from a file with bounds checks that name the file on failure."""

    def __init__(self, f, path: Path) -> None:
        self.f, self.path = f, path
        self.size = os.fstat(f.fileno()).st_size
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            raise InputError(f"{self.path}: truncated MXNet file: expected {n} bytes for {what} "
                             f"at offset {self.pos}, but only {self.size - self.pos} remain")
        data = self.f.read(n)
        self.pos += n
        return data

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_array(r: _Reader, index: int) -> np.ndarray:
    """One NDArray: magic/version, optional storage type, shape, context, dtype, raw data."""
    what = f"array {index}"
    (magic,) = r.unpack("I", f"{what} header")
    if magic in (MX_V2_MAGIC, MX_V3_MAGIC):
        (stype,) = r.unpack("i", f"{what} storage type")
        if stype != 0:
            raise InputError(f"{r.path}: array {index} has storage type {stype}; only dense "
                             "arrays (storage type 0) are supported")
    if magic in (MX_V1_MAGIC, MX_V2_MAGIC, MX_V3_MAGIC):
        (ndim,) = r.unpack("I", f"{what} ndim")
        if magic == MX_V3_MAGIC and ndim == 0xFFFFFFFF:  # ndim -1: unknown shape, no data
            ndim = 0
        shape = r.unpack(f"{ndim}q", f"{what} shape") if ndim else ()
    else:  # legacy: the first word is ndim, dims are uint32
        ndim = magic
        shape = r.unpack(f"{ndim}I", f"{what} shape") if ndim else ()
    if ndim == 0:
        return np.zeros((0,), dtype=np.float32)
    if any(d < 0 for d in shape):
        raise InputError(f"{r.path}: array {index} has a negative dimension in shape {shape}")
    r.unpack("ii", f"{what} context")
    (flag,) = r.unpack("i", f"{what} dtype")
    if flag not in MX_DTYPES:
        raise InputError(f"{r.path}: array {index} has unknown dtype flag {flag}; expected one "
                         f"of {sorted(MX_DTYPES)}")
    dtype = np.dtype(MX_DTYPES[flag])
    data = r.take(prod(shape) * dtype.itemsize, f"{what} data, shape {shape}, {dtype.name}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_mxnet_params(path: str | Path) -> dict[str, np.ndarray]:
    """Read an MXNet NDArray list file (``mx.nd.save``, ``.params``) without mxnet.

    Returns ``{name: array}`` with the names as stored (possibly ``arg:``/``aux:`` prefixed).
    Raises ValueError naming the file on a bad header, truncation, sparse storage, unknown
    dtypes or a name list that does not match the arrays.
    """
    path = Path(path)
    with path.open("rb") as f:
        r = _Reader(f, path)
        magic, _reserved = r.unpack("QQ", "file header")
        if magic != MX_LIST_MAGIC:
            raise InputError(f"{path}: not an MXNet NDArray file: header magic {magic:#x}, "
                             f"expected {MX_LIST_MAGIC:#x}")
        (count,) = r.unpack("Q", "array count")
        arrays = [_read_array(r, i) for i in range(count)]
        (n_names,) = r.unpack("Q", "name count")
        if n_names != count:
            raise InputError(f"{path}: MXNet file has {count} arrays but {n_names} names; "
                             "expected one name per array")
        names = []
        for i in range(n_names):
            (length,) = r.unpack("Q", f"name {i} length")
            names.append(r.take(length, f"name {i}").decode("utf-8"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{path}: MXNet file repeats the names {duplicates}")
    return dict(zip(names, arrays, strict=True))


# The original ResNet38 ImageNet names: stage S (2..7), block "a" (the first, b{S}) or "b{K}"
# (b{S}_{K}), branch 1 / 2a / 2b1 / 2b2.
_MX_BLOCK = re.compile(
    r"(?P<layer>res|bn)(?P<stage>[2-7])(?:a|b(?P<index>[1-9]\d*))"
    r"_branch(?P<branch>1|2a|2b1|2b2)_(?P<param>\w+)")
_MX_BN7 = re.compile(r"bn7_(?P<param>\w+)")
_MX_CONV1 = re.compile(r"conv1a_weight")
_MX_CLASSIFIER = re.compile(r"linear1000_\w+")
_MX_BN_PARAMS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                 "moving_var": "running_var"}


def _released_name(mx_name: str) -> str | None:
    """Released name of one MXNet ResNet38 parameter; "" for the classifier; None if unknown."""
    name = re.sub(r"^(arg|aux):", "", mx_name)
    if _MX_CONV1.fullmatch(name):
        return "conv1a.weight"
    if _MX_CLASSIFIER.fullmatch(name):
        return ""
    if m := _MX_BN7.fullmatch(name):
        param = _MX_BN_PARAMS.get(m["param"])
        return f"bn7.{param}" if param else None
    if m := _MX_BLOCK.fullmatch(name):
        block = f"b{m['stage']}" + (f"_{m['index']}" if m["index"] else "")
        if m["layer"] == "res":
            layer, param = "conv", "weight" if m["param"] == "weight" else None
        else:
            layer, param = "bn", _MX_BN_PARAMS.get(m["param"])
        return f"{block}.{layer}_branch{m['branch']}.{param}" if param else None
    return None


def _convert_mxnet(params: Mapping[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """MXNet ResNet38 params -> (released-name tensors, dropped classifier names)."""
    out: dict[str, torch.Tensor] = {}
    dropped, unknown = [], []
    for mx_name, array in params.items():
        name = _released_name(mx_name)
        if name is None:
            unknown.append(mx_name)
        elif name == "":
            dropped.append(mx_name)
        elif name in out:
            raise InputError(f"two MXNet parameters map to {name!r} (the second is {mx_name!r})")
        else:
            out[name] = torch.from_numpy(np.ascontiguousarray(array))
    if unknown:
        raise InputError(f"{len(unknown)} MXNet parameter names are not ResNet38 names: "
                         f"{_first(sorted(unknown))}")
    return out, dropped


def mxnet_to_resnet38(params: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Rename the original ResNet38 ImageNet MXNet parameters to the released flat names
    (``res4b3_branch2a_weight`` -> ``b4_3.conv_branch2a.weight``); drop linear1000_*."""
    return _convert_mxnet(params)[0]


# --------------------------------------------------------------------------------------------
# Loading and saving


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did: which kind of file, how many tensors, what was left out."""

    path: str
    kind: str  # "seam" (checkpoint, strict) or "imagenet" (backbone only)
    source: str  # key naming of the file: "mxnet", "released" (flat) or "seamlib" (backbone.*)
    loaded: int  # tensors copied into the model
    expected_missing: tuple[str, ...] = ()  # model keys left at init (the new SEAM head)
    dropped: tuple[str, ...] = ()  # file entries ignored (the ImageNet classifier)

    def __str__(self) -> str:
        text = (f"loaded {self.loaded} tensors from {self.path} ({KIND_TITLES[self.kind]}, "
                f"{self.source} names)")
        if self.expected_missing:
            text += f"; new layers left at init: {', '.join(self.expected_missing)}"
        if self.dropped:
            text += f"; ignored: {', '.join(self.dropped)}"
        return text


def _first(keys: list[str], n: int = 10) -> str:
    """The first ``n`` keys, comma-separated, with a count of the rest."""
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Read a weights file -> (tensors, naming "mxnet"/"released"/"seamlib", dropped names)."""
    if not path.is_file():
        raise MissingFile(f"{path}: weights file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), perhaps from an interrupted save; "
                         f"expected a {WEIGHTS_KINDS}: rerun the stage that wrote it")
    with path.open("rb") as f:
        header = f.read(len(MX_HEADER))
    if path.suffix == ".params" or header == MX_HEADER:
        params = read_mxnet_params(path)
        try:
            state, dropped = _convert_mxnet(params)
        except ValueError as e:
            raise InputError(f"{path}: {e}") from e
        return state, "mxnet", dropped
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a weights file"
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:200]
        why = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise InputError(f"{path}: unreadable ({why}); expected a {WEIGHTS_KINDS}") from e
    if isinstance(obj, Mapping):
        for entry in ("state_dict", "model"):
            if isinstance(obj.get(entry), Mapping):
                obj = obj[entry]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{path}: expected a state dict (parameter name -> tensor), got "
                         f"{'an empty dict' if isinstance(obj, Mapping) else type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str)
           or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"{path}: expected a state dict (parameter name -> tensor), but "
                         f"{len(bad)} entries are not tensors: {_first(bad)}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, "seamlib" if any(k.startswith(BACKBONE) for k in state) else "released", []


def _detect_kind(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> str:
    """"seam" if the file has the PCM layers or a CAM classifier shaped like the model's;
    "full" if the model is another network (no fc8) and the file has every one of its
    non-backbone tensors; else "imagenet" (a backbone, possibly with its classifier)."""
    if any(k.startswith(PCM_PREFIXES) for k in state):
        return "seam"
    fc8 = "fc8.weight"
    if fc8 in state and fc8 in target and state[fc8].shape == target[fc8].shape:
        return "seam"
    head = [k for k in target if not k.startswith(BACKBONE) and not _is_bookkeeping(k)]
    if fc8 not in target and head and all(k in state for k in head):
        return "full"  # another network's own checkpoint (e.g. DeepLab): its head is there
    return "imagenet"


def _backbone_of(keys) -> str | None:
    """Which backbone a set of our keys belongs to, from a signature key."""
    if "backbone.conv1a.weight" in keys:
        return "resnet38"
    if "backbone.layer1.0.conv1.weight" in keys:
        return "resnet50"
    return None


def describe_model(model: nn.Module) -> str:
    """``SEAMNet(backbone=ResNet38, width=0.125, num_classes=21)``, for error messages."""
    parts = []
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        parts.append(f"backbone={type(backbone).__name__}")
        if hasattr(backbone, "conv1a"):  # ResNet38: width from the 4096-channel output
            parts.append(f"width={backbone.channels['conv6'] / 4096:g}")
    fc8 = getattr(model, "fc8", None)
    if isinstance(fc8, nn.Conv2d):
        parts.append(f"num_classes={fc8.out_channels}")
    return f"{type(model).__name__}({', '.join(parts)})"


def _hint(state, target, misshaped: list[str]) -> str:
    """The likely cause of a mismatch: the other network's checkpoint (AffinityNet's has f8_5,
    a CAM network's fc8), backbone type, width or number of classes."""
    file_aff, model_aff = (any(f".{k}".endswith(AFFINITY_KEY) for k in keys)
                           for keys in (state, target))
    if file_aff != model_aff:
        return ("the file is an AffinityNet checkpoint (it has f8_5): the random walk's "
                "weights, not a CAM network's" if file_aff else
                "the model is an AffinityNet and the file is not one of its checkpoints (it has no "
                "f8_5): AffinityNet starts from ImageNet trunk weights (model.weights)")
    file_net, model_net = _backbone_of(state), _backbone_of(target)
    if file_net and model_net and file_net != model_net:
        return (f"the file holds {file_net} weights but the model's backbone is {model_net}; "
                f"build it with ModelConfig(backbone={file_net!r})")
    conv1a = "backbone.conv1a.weight"
    if conv1a in misshaped:
        file_w, model_w = state[conv1a].shape[0] / 64, target[conv1a].shape[0] / 64
        return (f"the file holds width-{file_w:g} ResNet38 weights but the model has width "
                f"{model_w:g}; build it with ModelConfig(width={file_w:g})")
    if "fc8.weight" in misshaped:
        return (f"fc8 has {state['fc8.weight'].shape[0]} classes in the file and "
                f"{target['fc8.weight'].shape[0]} in the model; set ModelConfig(num_classes=...)")
    if misshaped:
        return "a width or backbone mismatch between the model and the file is the usual cause"
    return ""


def load_weights(model: nn.Module, path: str | Path, kind: str = "auto") -> LoadReport:
    """Load pretrained weights into a SEAMNet (or AffinityNet, DeepLabLargeFOV), checking every
    key and shape.

    ``path``: a ``.pth`` state dict (bare, or under "state_dict"/"model") with released, our
    own or torchvision names, or an MXNet ``.params`` file of the ResNet38 ImageNet model.
    ``kind``: "seam" or "full" (a full checkpoint: every model tensor must be in the file and
    every file tensor in the model), "imagenet" (backbone only: the SEAM head stays at init, the
    ImageNet classifier and any other layer outside the trunk are ignored) or "auto" (seam,
    i.e. a full checkpoint, if the file has the layers f8_3/f8_4/pcm (AffinityNet files have
    them) or an fc8 shaped like the model's; full if the model has no fc8 and the file holds
    all of its layers outside the trunk (a DeepLab checkpoint); else imagenet). BatchNorm's
    num_batches_tracked is never required. Any other missing, unexpected or mis-shaped key
    raises ValueError.
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    raw, source, dropped = _read_state(path)
    if source == "seamlib":
        state, original = raw, {k: k for k in raw}
    else:
        table = key_table(model)
        original = {key_from_released(k, table): k for k in raw}
        state = from_released(raw, table)
    target = model.state_dict()
    if kind == "auto":
        kind = _detect_kind(state, target)
    expected_missing: list[str] = []
    if kind == "imagenet":
        expected_missing = [k for k in target if not k.startswith(BACKBONE)
                            and not _is_bookkeeping(k)]
        # Everything outside the trunk (new layers of any network) and the classifier.
        ignore = [k for k in state if not k.startswith(BACKBONE)
                  or k.startswith(CLASSIFIER_PREFIXES)]
        dropped = dropped + [original[k] for k in ignore]
        state = {k: v for k, v in state.items() if k not in ignore}
    required = {k for k in target if not _is_bookkeeping(k)} - set(expected_missing)
    # Lists in model order (file order for unexpected keys), so the stem comes first.
    missing = [k for k in target if k in required and k not in state]
    unexpected = [k for k in state if k not in target]
    misshaped = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or misshaped:
        lines = [f"{path} (read as {KIND_TITLES[kind]}, {source} names, {len(raw)} tensors) "
                 f"does not fit {describe_model(model)}"]
        shapes = [f"{k}: file {tuple(state[k].shape)}, model {tuple(target[k].shape)}"
                  for k in misshaped]
        for label, items in (("missing from the file", missing),
                             ("unexpected in the file", unexpected), ("mis-shaped", shapes)):
            if items:
                lines.append(f"  {label} ({len(items)}):")
                lines += [f"    {item}" for item in items[:10]]
                if len(items) > 10:
                    lines.append(f"    ... ({len(items) - 10} more)")
        hint = _hint(state, target, misshaped)
        if hint:
            lines.append(f"  hint: {hint}")
        raise InputError("\n".join(lines))
    model.load_state_dict(state, strict=False)
    return LoadReport(str(path), kind, source, len(state), tuple(expected_missing),
                      tuple(dropped))


def save_released(model: nn.Module, path: str | Path) -> Path:
    """Write the model's weights under the authors' released names, atomically.

    The file matches ``resnet38_SEAM.pth`` key for key (no num_batches_tracked), so it loads
    into the authors' code and back with :func:`load_weights`.
    """
    path = Path(path)
    released = to_released(model.state_dict(), key_table(model))
    state = {k: v.detach().cpu().clone() for k, v in released.items() if not _is_bookkeeping(k)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


# Where the reference ImageNet initialisation comes from: the authors' README points to the
# "Wider or Deeper" ResNet38 model zoo (Model A1).
IMAGENET_SOURCE = ("the ResNet38 ImageNet model A1 of the 'Wider or Deeper' model zoo, "
                   "https://github.com/itijyou/ademxapp (README: Pre-trained models)")


def require_weights(model: ModelConfig) -> None:
    """Refuse to train with frozen BN or stem unless ``model.weights`` is a readable file:
    frozen layers would otherwise keep their random initialisation for the whole run."""
    frozen = [name for name in ("frozen_bn", "frozen_stem") if getattr(model, name)]
    path = Path(model.weights) if model.weights else None
    if path is not None and path.is_file() and os.access(path, os.R_OK):
        return
    if not frozen and path is None:
        return
    found = "is not set" if path is None else f"= {path} is not a readable file"
    why = (f" ({' and '.join('model.' + n for n in frozen)} keep those layers at their "
           f"pretrained values, so training cannot start from random weights)" if frozen else "")
    raise MissingFile(
        f"model.weights {found}{why}. The reference initialisation is the MXNet file "
        f"{Path(IMAGENET_WEIGHTS).name} (or its PyTorch conversion with the released names, "
        f".pth), published as {IMAGENET_SOURCE}; put it at {IMAGENET_WEIGHTS} (the voc "
        f"default) or give its path with --set model.weights=PATH. To train from scratch "
        f"instead: --set model.frozen_bn=false --set model.frozen_stem=false.")


def verify_trunk(path: str | Path, sha256: str | None) -> Path:
    """Check that the trunk file exists and has the pinned sha256; return its path."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{path}: pretrained trunk not found; make it with `python -m "
                          "experiments pretrain --profile PROFILE --force` (`make pretrain` for "
                          "proxy)")
    if sha256 is None:
        raise InputError(f"{path}: no checksum pinned to check the trunk against; pin the file "
                         f"you made with --set pretrain.trunk_sha256={sha256_file(path)}")
    actual = sha256_file(path)
    if actual != sha256:
        raise InputError(f"{path}: sha256 {actual} does not match the pinned "
                         f"pretrain.trunk_sha256 {sha256}; restore the committed file or "
                         "regenerate it with `python -m experiments pretrain --force` and pin "
                         "the new checksum")
    return path
