"""The embedded synthetic VOC-format benchmark (profile ``proxy``): the whole paper on a CPU.

``generate`` writes the exact VOC layout (JPEGImages, SegmentationClass, SegmentationClassAug,
Annotations, ImageSets) so every loader and metric runs its real path. Images hold 1-4 objects
of the 20 classes (see shapes.py) over class-correlated scenes, with occlusion, clutter, sizes
from small to most of the frame and a 255 void band on object borders. Every image comes from
its own RNG seeded by (seed, ``SCENE_DRAWS``, split, index): same settings, same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from seamlib.config import SyntheticConfig
from seamlib.data import voc
from seamlib.data.lists import build_train_aug
from seamlib.data.shapes import (
    BODY_COLOURS,
    DESIGNS,
    FREQUENCY,
    PARTNERS,
    SCENES,
    ClassDesign,
    body_family,
    part_style,
)
from seamlib.errors import InputError
from seamlib.formats import atomic_write, save_label_png
from seamlib.parallel import run_parallel
from seamlib.provenance import claim

GENERATOR_VERSION = 5  # the rendering: each scene drawn ``scale`` times larger, details included
SCENE_DRAWS = 4  # in every image's RNG seed: the scene draws, unchanged since they were version 4
SPLITS = ("train", "val", "test", "sbd")  # "sbd": extra images that only join train_aug
VOID_WIDTH = 1  # pixels of void on each side of an object border
MIN_VISIBLE = 0.3  # an object less visible than this after occlusion is dropped
MIN_INTERIOR = 6  # ... and so is one with fewer visible pixels outside the void band
MIN_EXTENT = 0.25  # smallest object box side, as a fraction of the image's short side
EXTRA_OBJECTS = (0.45, 0.3, 0.15, 0.1)  # P(0..3 objects besides the first)
PERIODS_PER_OBJECT = 8  # part pattern cells (stripe widths) along an object's longer side
CLASS_INDEX = {d.name: i + 1 for i, d in enumerate(DESIGNS)}


@dataclass
class Placed:
    """One object of an image: its class, box (x0, y0, x1, y1) in pixels and mirroring."""

    cls: int
    box: tuple[float, float, float, float]
    flip: bool


# ----------------------------------------------------------------------------- rasterising


def raster(prims: tuple, box: tuple, flip: bool, size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of unit-box primitives mapped into ``box`` of an image of ``size``."""
    w, h = size
    x0, y0, x1, y1 = box
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)

    def pt(x: float, y: float) -> tuple[float, float]:
        return x0 + (1 - x if flip else x) * (x1 - x0), y0 + y * (y1 - y0)

    scale = max(x1 - x0, y1 - y0)
    for kind, *a in prims:
        if kind in ("ellipse", "ring"):
            (ax, ay), (bx, by) = pt(a[0] - a[2], a[1] - a[3]), pt(a[0] + a[2], a[1] + a[3])
            bbox = (min(ax, bx), ay, max(ax, bx), by)
            if kind == "ellipse":
                draw.ellipse(bbox, fill=255)
            else:
                draw.ellipse(bbox, outline=255, width=max(1, round(a[4] * scale)))
        elif kind == "rect":
            (ax, ay), (bx, by) = pt(a[0], a[1]), pt(a[2], a[3])
            draw.rectangle((min(ax, bx), ay, max(ax, bx), by), fill=255)
        elif kind == "poly":
            draw.polygon([pt(a[i], a[i + 1]) for i in range(0, len(a), 2)], fill=255)
        elif kind == "line":
            draw.line([pt(a[0], a[1]), pt(a[2], a[3])], fill=255, width=max(1, round(a[4] * scale)))
        else:
            raise InputError(f"unknown primitive {kind!r}")
    return np.asarray(canvas) > 0


# ------------------------------------------------------------------------------- textures


def noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Per-pixel Gaussian noise, (H, W, 1)."""
    return rng.normal(0, sigma, (h, w, 1))


def body_texture(rng: np.random.Generator, h: int, w: int, colour: tuple) -> np.ndarray:
    """A class family's body colour, jittered per object, with shading and grain."""
    base = np.clip(np.array(colour, float) + rng.uniform(-22, 22, 3), 0, 255)
    shade = np.linspace(1.12, 0.85, h)[:, None, None]
    return base * shade + noise(rng, h, w, 7)


def part_texture(rng: np.random.Generator, h: int, w: int, index: int,
                 period: int) -> np.ndarray:
    """The class-unique two-colour pattern of the discriminative part; ``period``: cell size, px."""
    kind, c1, c2 = part_style(index)
    yy, xx = np.mgrid[0:h, 0:w]
    select = {
        "hstripes": (yy // period) % 2,
        "vstripes": (xx // period) % 2,
        "checker": ((yy // period) + (xx // period)) % 2,
        "dots": ((yy % period < period / 2) & (xx % period < period / 2)).astype(int),
        "diagonal": ((xx + yy) // period) % 2,
    }[kind]
    out = np.where(select[..., None] == 1, np.array(c1, float), np.array(c2, float))
    return out + noise(rng, h, w, 6)


def part_period(box: tuple[float, float, float, float], scale: float = 1.0) -> int:
    """Pattern cell size that scales with the object (1/8 of its longer side, at least 3 px
    times the rendering scale), so the part stays legible on small objects and large ones."""
    return max(round(3 * scale), round(max(box[2] - box[0], box[3] - box[1]) / PERIODS_PER_OBJECT))


def void_width(scale: float) -> int:
    """The void band's half-width in pixels at a rendering scale."""
    return max(1, round(VOID_WIDTH * scale))


def scene_texture(rng: np.random.Generator, scene: str, h: int, w: int,
                  scale: float = 1.0) -> np.ndarray:
    """Background scene, all labelled 0: sky, water, grass, road, indoor or rails; its
    pixel-sized patterns (clouds, waves, blades, lanes, floor boards) drawn ``scale`` larger."""
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    horizon = rng.uniform(0.25, 0.5) * h
    sky = np.stack([150 + 60 * yy / h, 190 + 40 * yy / h, np.full_like(yy, 245)], -1)
    if scene == "sky":
        img = sky
        for _ in range(rng.integers(1, 4)):  # clouds
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), scale * rng.uniform(6, 20)
            cloud = ((xx - cx) / (1.8 * r)) ** 2 + ((yy - cy) / r) ** 2 < 1
            img[cloud] = 245
    elif scene == "water":
        waves = 18 * np.sin(xx / (3.0 * scale) + 2.5 * np.sin(yy / (4.0 * scale))) * (yy > horizon)
        water = np.stack([30 + waves, 95 + waves, 150 + waves], -1)
        img = np.where((yy > horizon)[..., None], water, sky)
    elif scene == "grass":
        blades = 25 * (((xx / scale).astype(int) * 7 + (yy / scale).astype(int) * 3) % 5 == 0)
        grass = np.stack([60 + blades, 140 + blades, 45 + 0 * blades], -1)
        img = np.where((yy > horizon)[..., None], grass, sky)
    elif scene == "road":
        img = np.stack([np.full_like(yy, 95)] * 3, -1)
        img[yy < horizon] = (150, 140, 130)  # buildings
        lane = (np.abs(yy - (horizon + h) / 2) < 1.5 * scale) & ((xx // (8 * scale)) % 2 == 0)
        img[lane] = 235
    elif scene == "indoor":
        wall = np.array(rng.uniform(150, 230, 3))
        img = np.broadcast_to(wall, (h, w, 3)).copy()
        floor = (yy > 0.65 * h) & (((yy / scale).astype(int) % 6) != 0)
        img[floor] = (150, 105, 65)
        img[(yy > 0.65 * h) & ~floor] = (110, 75, 45)
    elif scene == "rails":
        img = np.stack([np.full_like(yy, 125), np.full_like(yy, 115), np.full_like(yy, 100)], -1)
        img[yy < horizon] = sky[yy < horizon]
    else:
        raise InputError(f"unknown scene {scene!r}")
    return img + noise(rng, h, w, 6)


def context_mask(kind: str, box: tuple, size: tuple[int, int]) -> np.ndarray:
    """Where the class-correlated context object of an object at ``box`` lies (background)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    shapes = {
        "contrail": (("rect", -1.2, .45, 0, .55),),
        "lane": (("rect", -.3, 1.0, 1.3, 1.12),),
        "branch": (("line", -.4, .95, 1.2, 1.05, .08),),
        "water": (("rect", -.5, .85, 1.5, 1.4),),
        "cushion": (("ellipse", .5, 1.05, .6, .15),),
        "fence": (("rect", -.6, .2, 1.6, .28), ("rect", -.6, .55, 1.6, .63),
                  ("rect", -.4, .1, -.32, 1), ("rect", 1.3, .1, 1.38, 1)),
        "sill": (("rect", -.3, 1.0, 1.3, 1.15),),
        "rug": (("rect", -.2, .9, 1.2, 1.2),),
        "rails": (("rect", -1, .92, 2, .98), ("rect", -1, 1.04, 2, 1.1)),
        "cabinet": (("rect", -.1, 1.0, 1.1, 1.45),),
    }
    return raster(shapes[kind], (x0, y0, x0 + bw, y0 + bh), False, size)


CONTEXT_COLOURS = {"contrail": (250, 250, 250), "lane": (240, 240, 240), "branch": (95, 60, 30),
                   "water": (35, 100, 160), "cushion": (190, 60, 140), "fence": (170, 130, 80),
                   "sill": (235, 235, 225), "rug": (150, 30, 40), "rails": (60, 50, 45),
                   "cabinet": (80, 50, 30)}


# ------------------------------------------------------------------------------- sampling


def sample_objects(rng: np.random.Generator, size: tuple[int, int]) -> tuple[str, list[Placed]]:
    """Pick a scene and 1-4 objects: the first by class frequency, then partners or
    scene-mates, sizes log-uniform from small to most of the frame."""
    names = [d.name for d in DESIGNS]
    freq = np.array([FREQUENCY[n] for n in names])
    first = names[rng.choice(len(names), p=freq / freq.sum())]
    design = DESIGNS[CLASS_INDEX[first] - 1]
    scene = design.scene if design.scene and rng.random() < 0.85 else SCENES[rng.integers(6)]
    chosen = [first]
    for _ in range(rng.choice(4, p=EXTRA_OBJECTS)):
        partners = PARTNERS.get(chosen[0], ())
        if partners and rng.random() < 0.5:
            chosen.append(partners[rng.integers(len(partners))])
        else:
            mates = [d.name for d in DESIGNS if d.scene in (scene, None)]
            chosen.append(mates[rng.integers(len(mates))])
    return scene, [place(rng, DESIGNS[CLASS_INDEX[n] - 1], size) for n in chosen]


def place(rng: np.random.Generator, design: ClassDesign, size: tuple[int, int]) -> Placed:
    """A random box of the design's aspect ratio, 25%-95% of the short side, mostly in frame."""
    w, h = size
    extent = min(w, h) * np.exp(rng.uniform(np.log(MIN_EXTENT), np.log(0.95)))
    aspect = design.aspect * rng.uniform(0.85, 1.15)
    bw, bh = (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)
    bw, bh = min(bw, 0.98 * w), min(bh, 0.98 * h)
    x0 = rng.uniform(-0.1 * bw, w - 0.9 * bw)
    y0 = rng.uniform(-0.05 * bh, h - 0.95 * bh)
    return Placed(CLASS_INDEX[design.name], (x0, y0, x0 + bw, y0 + bh), bool(rng.random() < 0.5))


# ------------------------------------------------------------------------------ rendering


def render(rng: np.random.Generator, size: tuple[int, int], scale: float = 1.0
           ) -> tuple[np.ndarray, np.ndarray, list[Placed]]:
    """One image: (H, W, 3) uint8 RGB, (H, W) uint8 label map with void band, its objects;
    ``scale``: the rendering scale of pixel-sized details (``size`` is already scaled)."""
    w, h = size
    objects: list[Placed] = []
    while not objects:  # every image shows at least one labelled object, as in VOC
        scene, objects = sample_objects(rng, size)
        objects, masks = visible_objects(objects, size, scale)
    img = scene_texture(rng, scene, h, w, scale)
    for obj in objects:  # context objects lie behind every object
        kind = DESIGNS[obj.cls - 1].context
        if kind and rng.random() < 0.8:
            m = context_mask(kind, obj.box, size)
            img[m] = np.array(CONTEXT_COLOURS[kind], float) + noise(rng, int(m.sum()), 1, 6)[:, 0]
    draw_clutter(rng, img, scale)
    label = np.zeros((h, w), np.uint8)
    for obj, body in zip(objects, masks, strict=True):
        part = raster(DESIGNS[obj.cls - 1].part, obj.box, obj.flip, size) & body
        paint_object(rng, img, body, part, BODY_COLOURS[body_family(obj.cls)], obj.cls,
                     obj.box, scale)
        label[body] = obj.cls
    return np.clip(img, 0, 255).astype(np.uint8), void_band(label, void_width(scale)), objects


def paint_object(rng: np.random.Generator, img: np.ndarray, body: np.ndarray, part: np.ndarray,
                 colour: tuple, style: int, box: tuple, scale: float = 1.0) -> None:
    """Paint an object in place: body texture of ``colour`` on ``body``, then the part pattern
    of class ``style`` (see shapes.part_style) on ``part``, its cells at rendering ``scale``."""
    h, w = img.shape[:2]
    img[body] = body_texture(rng, h, w, colour)[body]
    img[part] = part_texture(rng, h, w, style, part_period(box, scale))[part]


def visible_objects(objects: list[Placed], size: tuple[int, int], scale: float = 1.0
                    ) -> tuple[list[Placed], list[np.ndarray]]:
    """Keep the objects that stay recognisable under the ones drawn on top of them: at least
    MIN_VISIBLE of the silhouette visible and some of it outside the void band. Returns the
    kept objects (in drawing order) and their silhouette masks. Pixel thresholds follow the
    rendering ``scale``."""
    masks = [raster(DESIGNS[o.cls - 1].body, o.box, o.flip, size) for o in objects]
    covered = np.zeros(masks[0].shape, bool)
    keep = []
    for i in reversed(range(len(objects))):  # top-most first: it is never occluded
        seen = masks[i] & ~covered
        interior = erode(seen, void_width(scale)).sum()
        enough = interior >= MIN_INTERIOR * scale ** 2
        if seen.sum() >= MIN_VISIBLE * max(masks[i].sum(), 1) and enough:
            keep.append(i)
            covered |= masks[i]
    keep.reverse()
    return [objects[i] for i in keep], [masks[i] for i in keep]


def draw_clutter(rng: np.random.Generator, img: np.ndarray, scale: float = 1.0) -> None:
    """0-3 shapes of no class (background) in random plain colours, at least 3 px times the
    rendering ``scale`` in radius."""
    h, w = img.shape[:2]
    for _ in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(3 * scale, 0.15 * min(h, w))
        kind = ("ellipse", .5, .5, .5, .5) if rng.random() < 0.5 else ("rect", 0, 0, 1, 1)
        m = raster((kind,), (cx - r, cy - r, cx + r, cy + r * rng.uniform(0.5, 1.5)), False,
                   (w, h))
        img[m] = rng.uniform(0, 255, 3)


def shifts(a: np.ndarray, width: int):
    """Every shift of ``a`` by up to ``width`` pixels in each direction (edges repeated)."""
    padded = np.pad(a, width, mode="edge")
    h, w = a.shape
    for dy in range(2 * width + 1):
        for dx in range(2 * width + 1):
            yield padded[dy:dy + h, dx:dx + w]


def erode(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` whose whole (2 width + 1)^2 neighbourhood is in the mask."""
    out = mask.copy()
    for shifted in shifts(mask, width):
        out &= shifted
    return out


def void_band(label: np.ndarray, width: int = VOID_WIDTH) -> np.ndarray:
    """Set to 255 every pixel within ``width`` of a border between different labels."""
    border = np.zeros(label.shape, bool)
    for shifted in shifts(label, width):
        border |= shifted != label
    out = label.copy()
    out[border] = voc.IGNORE
    return out


# -------------------------------------------------------------------------------- writing


def image_id(split: str, index: int) -> str:
    """Stable id of the index-th image of a split, e.g. ``train_000012``."""
    return f"{split}_{index:06d}"


def rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    """The image's own RNG: independent of worker count and generation order."""
    return np.random.default_rng([seed, SCENE_DRAWS, SPLITS.index(split), index])


def annotation_xml(image_id_: str, size: tuple[int, int], objects: list[Placed]) -> bytes:
    """VOC-style XML annotation with one <object> per visible object."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id_}.jpg"
    sz = ET.SubElement(root, "size")
    for tag, value in zip(("width", "height", "depth"), (*size, 3), strict=True):
        ET.SubElement(sz, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = voc.CLASSES[obj.cls]
        ET.SubElement(node, "pose").text = "Unspecified"
        x0, y0, x1, y1 = obj.box
        truncated = x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]
        ET.SubElement(node, "truncated").text = str(int(truncated))
        ET.SubElement(node, "difficult").text = "0"
        bb = ET.SubElement(node, "bndbox")
        for tag, v, hi in zip(("xmin", "ymin", "xmax", "ymax"), obj.box, (*size, *size),
                              strict=True):
            ET.SubElement(bb, tag).text = str(int(np.clip(round(v), 1, hi)))
    return ET.tostring(root)


def write_sample(args: tuple[Path, int, str, int, int, int, float]) -> str:
    """Render and write one image with its masks and XML; skip one already written (resume).
    Side lengths are drawn from [lo, hi], then multiplied by the rendering scale."""
    root, seed, split, index, lo, hi, scale = args
    iid = image_id(split, index)
    jpg, xml = root / voc.IMAGES / f"{iid}.jpg", root / voc.ANNOTATIONS / f"{iid}.xml"
    masks = [root / voc.SEG_CLASS_AUG / f"{iid}.png"]
    if split != "sbd":  # SBD-style images have no VOC SegmentationClass mask
        masks.append(root / voc.SEG_CLASS / f"{iid}.png")
    if all(p.exists() for p in (jpg, xml, *masks)):
        return iid
    rng = rng_for(seed, split, index)
    drawn = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
    size = (round(scale * drawn[0]), round(scale * drawn[1]))
    img, label, objects = render(rng, size, scale)
    atomic_write(jpg, lambda t: Image.fromarray(img).save(t, "JPEG", quality=90))
    for path in masks:
        save_label_png(path, label)
    text = annotation_xml(iid, size, objects)
    atomic_write(xml, lambda t: t.write_bytes(text))
    return iid


def split_ids(cfg: SyntheticConfig) -> dict[str, list[str]]:
    """Ids of every split for the configured sizes."""
    counts = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test, "sbd": cfg.n_extra}
    return {s: [image_id(s, i) for i in range(n)] for s, n in counts.items()}


def write_lists(root: Path, ids: dict[str, list[str]]) -> None:
    """VOC segmentation lists, SBD-style lists and the train_aug list built from them, each
    written only where absent (an edited list is kept).

    As in the real data, the SBD-style val list also holds some VOC val images (a tenth, at
    least one, so even ``smoke`` can catch a train_aug that keeps them), which
    ``build_train_aug`` must remove."""
    seg, aug = root / voc.SEG_LISTS, root / voc.SBD_LISTS
    cut = int(0.8 * len(ids["sbd"]))
    held_out = ids["val"][: max(1, len(ids["val"]) // 10)]
    sbd_train, sbd_val = ids["sbd"][:cut], ids["sbd"][cut:] + held_out
    lists = {**{seg / f"{split}.txt": ids[split] for split in ("train", "val", "test")},
             aug / "sbd_train.txt": sbd_train, aug / "sbd_val.txt": sbd_val,
             seg / "train_aug.txt": build_train_aug(sbd_train, sbd_val, ids["train"], ids["val"])}
    for path, names in lists.items():
        if not path.is_file():  # written once: a list edited since is the user's
            voc.write_list(path, names)


def manifest(cfg: SyntheticConfig) -> dict:
    """The settings record of a benchmark folder: the generator's version and every setting."""
    return {"generator_version": GENERATOR_VERSION, **asdict(cfg)}


def generate(cfg: SyntheticConfig, root: Path, workers: int = 2) -> Path:
    """Write (or finish writing) the synthetic benchmark into ``root``; return ``root``.

    A manifest records the settings; a folder made with other settings is an error, not
    silently mixed."""
    root = Path(root)
    claim(root / voc.GENERATED, manifest(cfg), "synthetic data")
    ids = split_ids(cfg)
    jobs = [(root, cfg.seed, s, i, cfg.min_size, cfg.max_size, cfg.scale)
            for s, names in ids.items() for i in range(len(names))]
    written = run_parallel(write_sample, jobs, workers, context="fork", chunksize=32)
    for _ in tqdm(written, total=len(jobs), desc=f"synthetic data -> {root}", unit="img"):
        pass
    write_lists(root, ids)
    return root
