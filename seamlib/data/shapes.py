"""The 20 object classes of the synthetic benchmark: silhouettes, parts, looks and contexts.

Each class is drawn from primitives in a unit box (x right, y down). Its *body* shares one of
ten colour families with one other class, while a small *part* carries a pattern unique
to the class: a classifier can name the class from the part alone, so plain CAMs light up the
part and miss the body (under-activation). Most classes also prefer a scene and some bring a
*context* object labelled background (water under boats, rails under trains, a fence behind
cattle): plain CAMs spill onto those (over-activation). Both are the failure modes SEAM targets.
"""

from __future__ import annotations

from dataclasses import dataclass

# A primitive: ("ellipse", cx, cy, rx, ry) | ("rect", x0, y0, x1, y1) | ("poly", x0, y0, x1, ...)
# | ("line", x0, y0, x1, y1, width) | ("ring", cx, cy, rx, ry, width); unit-box coordinates.
Primitive = tuple

SCENES = ("sky", "water", "grass", "road", "indoor", "rails")

# Ten body colour families; class k uses family body_family(k), so each family has two classes.
BODY_COLOURS = ((165, 62, 52), (62, 92, 168), (196, 176, 70), (118, 118, 118), (124, 84, 46),
                (60, 140, 130), (140, 70, 140), (210, 125, 60), (230, 170, 180), (40, 40, 70))

# Saturated colours for the class-unique part patterns.
PART_COLOURS = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255),
                (255, 96, 0), (0, 200, 0), (140, 0, 255), (255, 0, 90), (0, 90, 255))
PATTERNS = ("hstripes", "vstripes", "checker", "dots", "diagonal")


@dataclass(frozen=True)
class ClassDesign:
    """How one class looks and where it lives."""

    name: str
    aspect: float  # width / height of the object box
    body: tuple[Primitive, ...]
    part: tuple[Primitive, ...]  # the discriminative part, inside the silhouette
    scene: str | None  # preferred scene (None: any)
    context: str | None = None  # background object drawn next to the object


def _legs(x0: float, x1: float, y0: float, n: int = 4, w: float = 0.07) -> tuple:
    """n vertical legs between x0 and x1 from y0 down to the bottom of the box."""
    step = (x1 - x0) / (n - 1)
    return tuple(("rect", x0 + i * step - w / 2, y0, x0 + i * step + w / 2, 1.0)
                 for i in range(n))


DESIGNS: tuple[ClassDesign, ...] = (
    ClassDesign("aeroplane", 2.0,
                (("ellipse", .5, .5, .48, .11), ("poly", .38, .5, .6, .5, .47, .97, .4, .97),
                 ("poly", .38, .5, .6, .5, .47, .05, .4, .05),
                 ("poly", .02, .52, .14, .52, .07, .18, .01, .18)),
                (("ellipse", .84, .5, .16, .14),), "sky", "contrail"),
    ClassDesign("bicycle", 1.6,
                (("ring", .22, .7, .2, .29, .06), ("ring", .78, .7, .2, .29, .06),
                 ("line", .22, .7, .45, .3, .05), ("line", .45, .3, .78, .7, .05),
                 ("line", .45, .3, .5, .7, .05), ("line", .5, .7, .22, .7, .05),
                 ("rect", .38, .18, .55, .28)),
                (("ellipse", .5, .7, .14, .2),), "road", "lane"),
    ClassDesign("bird", 1.3,
                (("ellipse", .45, .58, .34, .27), ("poly", .15, .55, 0, .35, 0, .75),
                 ("ellipse", .78, .36, .16, .2), ("poly", .9, .3, 1, .38, .9, .42)),
                (("ellipse", .78, .36, .15, .19),), "sky", "branch"),
    ClassDesign("boat", 1.5,
                (("poly", 0, .62, 1, .62, .85, .95, .15, .95), ("line", .5, .05, .5, .62, .04),
                 ("poly", .52, .06, .52, .58, .9, .58)),
                (("rect", .15, .42, .45, .66),), "water", "water"),
    ClassDesign("bottle", 0.4,
                (("rect", .08, .35, .92, 1), ("rect", .33, 0, .67, .38)),
                (("rect", .08, .5, .92, .8),), "indoor", None),
    ClassDesign("bus", 2.2,
                (("rect", 0, .1, 1, .85), ("ellipse", .2, .85, .09, .14),
                 ("ellipse", .8, .85, .09, .14)),
                (("rect", .04, .14, .4, .45),), "road", "lane"),
    ClassDesign("car", 2.0,
                (("rect", 0, .45, 1, .8), ("poly", .2, .45, .3, .12, .7, .12, .82, .45),
                 ("ellipse", .22, .82, .1, .17), ("ellipse", .78, .82, .1, .17)),
                (("rect", .75, .45, 1, .8),), "road", "lane"),
    ClassDesign("cat", 1.3,
                (("ellipse", .45, .65, .33, .26), ("ellipse", .78, .38, .18, .2),
                 ("poly", .64, .28, .68, .06, .76, .22), ("poly", .8, .22, .88, .06, .92, .28),
                 ("line", .13, .7, .02, .25, .06)),
                (("ellipse", .78, .4, .15, .16),), "indoor", "cushion"),
    ClassDesign("chair", 0.7,
                (("rect", .1, .5, .9, .62), ("rect", .1, 0, .24, .55), *_legs(.15, .85, .6)),
                (("rect", .1, 0, .24, .5),), "indoor", None),
    ClassDesign("cow", 1.6,
                (("ellipse", .47, .45, .4, .25), ("ellipse", .88, .3, .12, .17),
                 *_legs(.18, .74, .5)),
                (("ellipse", .88, .3, .12, .17),), "grass", "fence"),
    ClassDesign("diningtable", 1.8,
                (("rect", 0, .3, 1, .45), *_legs(.06, .94, .4, n=2, w=.08)),
                (("rect", .2, .3, .8, .45),), "indoor", None),
    ClassDesign("dog", 1.4,
                (("ellipse", .45, .55, .34, .22), ("ellipse", .82, .32, .15, .18),
                 ("ellipse", .74, .36, .06, .16), *_legs(.2, .7, .6),
                 ("line", .12, .5, .0, .3, .06)),
                (("ellipse", .82, .32, .15, .18),), "grass", None),
    ClassDesign("horse", 1.3,
                (("ellipse", .45, .45, .34, .2), ("poly", .66, .38, .8, .05, .9, .1, .78, .45),
                 ("ellipse", .9, .14, .1, .09), *_legs(.2, .7, .5, w=.06)),
                (("poly", .7, .36, .8, .08, .86, .1, .76, .4),), "grass", "fence"),
    ClassDesign("motorbike", 1.6,
                (("ellipse", .2, .72, .19, .28), ("ellipse", .8, .72, .19, .28),
                 ("poly", .2, .6, .4, .3, .75, .3, .85, .6), ("line", .75, .3, .85, .05, .05)),
                (("ellipse", .52, .4, .2, .16),), "road", "lane"),
    ClassDesign("person", 0.45,
                (("ellipse", .5, .11, .2, .11), ("rect", .22, .22, .78, .6),
                 ("rect", .26, .6, .46, 1), ("rect", .54, .6, .74, 1),
                 ("rect", .04, .24, .2, .56), ("rect", .8, .24, .96, .56)),
                (("ellipse", .5, .11, .2, .11), ("rect", .22, .22, .78, .36)), None, None),
    ClassDesign("pottedplant", 0.7,
                (("poly", .22, .6, .78, .6, .68, 1, .32, 1), ("ellipse", .5, .35, .45, .28),
                 ("ellipse", .3, .2, .2, .18), ("ellipse", .7, .2, .2, .18)),
                (("ellipse", .5, .3, .18, .18),), "indoor", "sill"),
    ClassDesign("sheep", 1.4,
                (("ellipse", .45, .45, .38, .28), ("ellipse", .2, .32, .16, .16),
                 ("ellipse", .6, .28, .18, .16), ("ellipse", .86, .36, .13, .16),
                 *_legs(.22, .66, .6, w=.06)),
                (("ellipse", .86, .36, .13, .16),), "grass", "fence"),
    ClassDesign("sofa", 2.0,
                (("rect", 0, .45, 1, .85), ("rect", .05, .15, .95, .5), ("rect", 0, .35, .1, .85),
                 ("rect", .9, .35, 1, .85), ("rect", .05, .85, .1, 1), ("rect", .9, .85, .95, 1)),
                (("rect", .3, .2, .7, .5),), "indoor", "rug"),
    ClassDesign("train", 2.6,
                (("rect", 0, .12, .88, .9), ("poly", .88, .12, .93, .12, 1, .5, 1, .9, .88, .9)),
                (("rect", .78, .12, .88, .9), ("poly", .88, .12, .93, .12, 1, .5, 1, .9, .88, .9)),
                "rails", "rails"),
    ClassDesign("tvmonitor", 1.3,
                (("rect", 0, 0, 1, .78), ("rect", .42, .78, .58, .9), ("rect", .25, .9, .75, 1)),
                (("rect", .08, .08, .5, .45),), "indoor", "cabinet"),
)

# Pairs that appear together more often than chance, as in VOC (person rides, sits, dines).
PARTNERS: dict[str, tuple[str, ...]] = {
    "person": ("horse", "bicycle", "motorbike", "sofa", "chair", "dog", "boat"),
    "horse": ("person",), "bicycle": ("person", "car"), "motorbike": ("person", "car"),
    "diningtable": ("chair", "bottle", "person"), "chair": ("diningtable", "person"),
    "sofa": ("person", "cat", "dog"), "tvmonitor": ("sofa", "chair", "person"),
    "car": ("bus", "person"), "bus": ("car", "person"), "cow": ("sheep",), "sheep": ("cow",),
    "bottle": ("diningtable", "person"), "cat": ("sofa", "dog"), "dog": ("person", "cat"),
}

# Relative frequency of each class as the first object of an image (person most common).
FREQUENCY: dict[str, float] = {name: 1.0 for name in (d.name for d in DESIGNS)}
FREQUENCY.update(person=3.0, chair=1.4, car=1.4, dog=1.3, cat=1.2, bird=1.1)


def body_family(index: int) -> int:
    """Body colour family of class ``index`` (1..20): classes k and k + 10 share one."""
    return (index - 1) % len(BODY_COLOURS)


def part_style(index: int) -> tuple[str, tuple[int, int, int], tuple[int, int, int]]:
    """Pattern and two colours of class ``index`` (1..20): unique for every class."""
    k = index - 1
    first = PART_COLOURS[k % len(PART_COLOURS)]
    second = PART_COLOURS[(k // len(PART_COLOURS) + 3 + k) % len(PART_COLOURS)]
    return PATTERNS[k % len(PATTERNS)], first, second
