"""The proxy "ImageNet": object-centric images for pretraining the proxy trunk.

One object per image, over the benchmark's 20 class shapes plus distractor shape classes that
never appear in the benchmark, drawn with the benchmark's own primitives and painters
(synthetic.py). Backgrounds (scene and clutter) are drawn independently of the class and no
context objects are drawn, so the set teaches objects, not the benchmark's scene shortcuts.
Colour and part pattern follow the class most of the time (like ImageNet's colours and
textures); the silhouette is the one cue that always does. Every image comes from its own RNG
seeded by (seed, version, split, index) and lives in memory only: same settings, same arrays.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from seamlib.config import PretrainConfig
from seamlib.data.shapes import BODY_COLOURS, DESIGNS, SCENES, ClassDesign, body_family
from seamlib.data.synthetic import draw_clutter, paint_object, raster, scene_texture
from seamlib.errors import InputError
from seamlib.parallel import run_parallel

PRETRAIN_VERSION = 1
SPLITS = ("train", "heldout")
DESIGN_SEED = 2020  # the distractor shapes are fixed by this seed and the version
P_CLASS_COLOUR = 0.8  # chance that the body has its class's colour family (else any family)
P_PART = 0.8  # chance that the class's part pattern is drawn
EXTENT = (0.5, 0.95)  # object box side, as a fraction of the image side


def _primitive(rng: np.random.Generator, cx: float, cy: float, r: float) -> tuple:
    """One random primitive around (cx, cy) of radius about ``r``, in unit-box coordinates."""
    kind = ("ellipse", "rect", "poly", "line", "ring")[rng.integers(5)]
    rx, ry = r * rng.uniform(0.5, 1.5), r * rng.uniform(0.5, 1.5)
    if kind == "ellipse":
        return ("ellipse", cx, cy, rx, ry)
    if kind == "rect":
        return ("rect", cx - rx, cy - ry, cx + rx, cy + ry)
    if kind == "poly":
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 6))))
        pts = [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]
        return ("poly", *[round(float(v), 3) for p in pts for v in p])
    if kind == "line":
        return ("line", cx - rx, cy - ry, cx + rx, cy + ry, rng.uniform(0.04, 0.1))
    return ("ring", cx, cy, rx, ry, rng.uniform(0.05, 0.1))


def distractor_designs(n: int) -> tuple[ClassDesign, ...]:
    """``n`` shape classes not in the benchmark: a core ellipse, rect or polygon with one to
    four appendages, each fixed by (DESIGN_SEED, PRETRAIN_VERSION, its index)."""
    out = []
    for j in range(n):
        rng = np.random.default_rng([DESIGN_SEED, PRETRAIN_VERSION, j])
        core = _primitive(rng, 0.5, 0.5, 0.3)
        while core[0] in ("line", "ring"):
            core = _primitive(rng, 0.5, 0.5, 0.3)
        limbs = [_primitive(rng, *rng.uniform(0.15, 0.85, 2), rng.uniform(0.08, 0.2))
                 for _ in range(rng.integers(1, 5))]
        part = _primitive(rng, *rng.uniform(0.35, 0.65, 2), 0.12)
        out.append(ClassDesign(f"distractor{j:02d}", float(rng.uniform(0.5, 2.2)),
                               (core, *limbs), (part,), None))
    return tuple(out)


def class_designs(cfg: PretrainConfig) -> tuple[ClassDesign, ...]:
    """All pretraining classes: the benchmark's 20, then the distractors."""
    return DESIGNS + distractor_designs(cfg.n_distractors)


def render_object(rng: np.random.Generator, design: ClassDesign, index: int,
                  size: int) -> tuple[np.ndarray, float]:
    """One object-centric image (size, size, 3) uint8 of class ``index`` (1-based) on a
    class-independent background; also the object's share of the pixels."""
    img = scene_texture(rng, SCENES[rng.integers(len(SCENES))], size, size)
    draw_clutter(rng, img)
    extent = size * rng.uniform(*EXTENT)
    aspect = design.aspect * rng.uniform(0.85, 1.15)
    bw, bh = (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)
    x0, y0 = rng.uniform(0, size - bw), rng.uniform(0, size - bh)
    box, flip = (x0, y0, x0 + bw, y0 + bh), bool(rng.random() < 0.5)
    body = raster(design.body, box, flip, (size, size))
    part = raster(design.part, box, flip, (size, size)) & body
    if rng.random() >= P_PART:
        part[:] = False
    own = rng.random() < P_CLASS_COLOUR
    family = body_family(index) if own else rng.integers(len(BODY_COLOURS))
    paint_object(rng, img, body, part, BODY_COLOURS[family], index, box)
    return np.clip(img, 0, 255).astype(np.uint8), float(body.mean())


def _render_job(args: tuple[int, int, int, int, int]) -> tuple[np.ndarray, float]:
    """Render image ``index`` of a split (a process-pool job)."""
    seed, split, index, n_distractors, size = args
    designs = DESIGNS + distractor_designs(n_distractors)
    cls = index % len(designs)
    rng = np.random.default_rng([seed, PRETRAIN_VERSION, split, index])
    return render_object(rng, designs[cls], cls + 1, size)


def make_split(cfg: PretrainConfig, split: str, workers: int = 2,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images (N, S, S, 3) uint8, 0-based labels (N,) int64 and object pixel shares (N,)
    of a split: classes in turn, ``n_train`` or ``n_heldout`` images per class."""
    if split not in SPLITS:
        raise InputError(f"unknown pretraining split {split!r}; expected one of {SPLITS}")
    n_classes = len(DESIGNS) + cfg.n_distractors
    per_class = cfg.n_train if split == "train" else cfg.n_heldout
    jobs = [(cfg.seed, SPLITS.index(split), i, cfg.n_distractors, cfg.image_size)
            for i in range(n_classes * per_class)]
    rendered = run_parallel(_render_job, jobs, workers, context="fork", ordered=True,
                            chunksize=64)
    done = [d for _, d in tqdm(rendered, total=len(jobs), desc=f"pretraining set {split}",
                               unit="img", disable=not progress)]
    images = np.stack([d[0] for d in done]) if done else np.zeros((0, cfg.image_size,
                                                                   cfg.image_size, 3), np.uint8)
    labels = np.arange(len(jobs), dtype=np.int64) % n_classes
    return images, labels, np.array([d[1] for d in done], np.float32)


def datasheet(cfg: PretrainConfig, labels: np.ndarray, shares: np.ndarray) -> str:
    """Markdown datasheet of the pretraining set from its settings and the generated train
    split's labels and object pixel shares."""
    designs = class_designs(cfg)
    lines = [
        "# Proxy pretraining set (\"proxy ImageNet\"): datasheet", "",
        "Written by `seam pretrain` (seamlib/data/pretrain_set.py) from the generated arrays.",
        "", "## Generator", "",
        f"- pretrain_version: {PRETRAIN_VERSION}; seed: {cfg.seed}; distractor design seed: "
        f"{DESIGN_SEED}",
        f"- classes: {len(designs)} = 20 benchmark shapes + {cfg.n_distractors} distractor "
        "shapes that never appear in the benchmark",
        f"- images: {cfg.n_train} train + {cfg.n_heldout} held-out per class, "
        f"{cfg.image_size}x{cfg.image_size} px, one object each, kept in memory (not on disk)",
        f"- object box side: {EXTENT[0]:.0%}-{EXTENT[1]:.0%} of the image, aspect ratio of the "
        "class +-15%, mirrored half of the time",
        "- background: one of the benchmark's scenes (sky, water, grass, road, indoor, rails) "
        "drawn uniformly and independently of the class, plus 0-3 clutter shapes; no context "
        "objects (the benchmark's class-correlated water, rails, fences ... are never drawn)",
        f"- body colour: the class's colour family with probability {P_CLASS_COLOUR}, else any "
        f"family; part pattern drawn with probability {P_PART}: the silhouette is the only "
        "cue that always identifies the class", "",
        "## Classes (train split)", "",
        "| index | class | images | mean object pixel share |", "|---|---|---|---|",
    ]
    for k, design in enumerate(designs):
        sel = labels == k
        lines.append(f"| {k} | {design.name} | {int(sel.sum())} | "
                     f"{float(shares[sel].mean()) if sel.any() else 0:.3f} |")
    return "\n".join(lines) + "\n"
