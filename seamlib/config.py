"""Configuration: one plain dataclass per pipeline stage, reference (paper) defaults, and the
run profiles ``smoke``/``proxy``/``voc`` expressed as overrides of those defaults."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seamlib.errors import InputError

PROFILES_NAMES = ("smoke", "proxy", "proxy448", "voc")
DEFAULT_PROFILE = "proxy"  # the main job: what load_config and every `seam` command use
# The ResNet38 ImageNet model the reference (voc) training starts from; see models/weights.py.
IMAGENET_WEIGHTS = "data/weights/ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
# Checksum of the committed proxy trunk (results/proxy/pretrain.json;
# `python -m experiments pretrain --verify`).
PROXY_TRUNK_SHA256 = "098ae20ccf2ee56b5bcf512705b542d30f6d32f75b537b609aa7778bbd79ada6"


@dataclass
class DataConfig:
    """Where a VOC-format dataset lives and how training images are augmented."""

    root: str = "data/voc/VOC2012"  # VOC layout: JPEGImages, SegmentationClass[Aug], ImageSets
    train_list: str = "train_aug"  # classification / SEAM training
    cam_list: str = "train"  # CAM quality is measured here (SEAM issue #6)
    val_list: str = "val"
    # Image-level labels: "xml" (authors: every object of Annotations/<id>.xml, difficult ones
    # included) or "mask" (classes painted in SegmentationClassAug; difficult objects are void)
    label_source: str = "xml"
    # How `seam data` readies data.root: "download" (VOC 2012 + SBD), "generate" (the synthetic
    # benchmark) or "validate" (a folder of your own: only checked, its labels cached)
    prepare: str = "download"
    crop_size: int = 448
    resize_long: tuple[int, int] = (448, 768)  # random long-side resize range
    # Multiplies the low and high end of resize_long (the augmentation-range ablation).
    resize_long_scale: tuple[float, float] = (1.0, 1.0)
    color_jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)
    num_workers: int = 8
    cache_images: bool = False  # decode each training image once and keep it in memory


@dataclass
class SyntheticConfig:
    """Sizes and seed of the embedded synthetic VOC-format benchmark (see data/synthetic.py)."""

    seed: int = 0
    n_train: int = 400  # VOC-style segmentation `train` (CAM quality is measured here)
    n_val: int = 400
    n_test: int = 400
    n_extra: int = 2600  # SBD-style extra images that join `train` to form `train_aug`
    min_size: int = 96  # image side lengths are drawn from [min_size, max_size]
    max_size: int = 160
    # Render each drawn scene ``scale`` times larger, pixel-sized details (void band, textures,
    # clutter) included: the same scenes at every scale.
    scale: float = 1.0


@dataclass
class ModelConfig:
    """The SEAM network: backbone choice, width and which parts train."""

    backbone: str = "resnet38"  # "resnet38" (paper) or "resnet50" (torchvision)
    width: float = 1.0  # channel multiplier; <1 gives a narrow copy of the same architecture
    output_stride: int = 8  # resnet50 only: 8 or 16 (ResNet38 is always 8)
    num_classes: int = 21  # background + 20 VOC classes
    frozen_bn: bool = True  # reference: BN in eval mode with ImageNet statistics, no grad
    frozen_stem: bool = True  # reference: conv1a, b2, b2_1, b2_2 not trained
    # ImageNet (.pth / MXNet .params) or SEAM checkpoint; required when BN or the stem is frozen
    weights: str | None = IMAGENET_WEIGHTS


@dataclass
class LossConfig:
    """Which SEAM terms are on, for the ablations (ER, PCM via ECR, ECR)."""

    transform: str = "rescale:0.3"  # the affine transform A of the siamese branch
    use_er: bool = True  # equivariant regularisation L_ER
    use_ecr: bool = True  # equivariant cross regularisation L_ECR (trains the PCM)
    use_rvmin: bool = True  # adaptive min-pooling on the PCM output (authors' code)
    ecr_topk_ratio: float = 0.2  # online hard pixel mining in L_ECR
    # Run the transformed branch (its classification loss) even with ER and ECR off: a
    # diagnostic between the one-branch baseline and SEAM, not a setting of the paper.
    two_branches: bool = False


@dataclass
class TrainConfig:
    """Optimisation settings of the authors' SEAM training script."""

    lr: float = 0.01
    weight_decay: float = 5e-4
    # Reference quirk: the authors' PolyOptimizer passes weight_decay into SGD's momentum slot,
    # so the effective momentum is 5e-4. Set 0.9 for standard SGD with momentum.
    momentum: float = 5e-4
    poly_power: float = 0.9
    # Learning-rate schedule: "poly" (the reference) or "cosine" (after a linear warm-up over
    # the ``warmup`` share of the steps; the proxy trunk's pretraining).
    schedule: str = "poly"
    warmup: float = 0.0
    batch_size: int = 8
    epochs: int = 8
    seed: int = 0
    out_dir: str = "runs/voc/train_cam"
    checkpoint_every: int = 0  # optimiser steps between checkpoints; 0: only at each epoch's end
    log_every: int = 20  # optimiser steps between rows of <out_dir>/log.jsonl (and the last)
    # fp32 by default on every device ("auto" and "off"); "bf16"/"fp16" autocast and the
    # channels_last format are opt-in speed settings, not the replication's numerics. On CUDA,
    # torch's own default stands: TF32 in convolutions (cuDNN), not in matrix products.
    amp: str = "auto"  # mixed precision: "auto" or "off" (fp32), "bf16", "fp16"
    channels_last: str = "auto"  # memory format: "auto" or "off" (torch's default), "on"


@dataclass
class CAMConfig:
    """Multi-scale CAM inference (authors' infer_SEAM): every scale with its horizontal flip."""

    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)


@dataclass
class CRFConfig:
    """Dense CRF (pydensecrf) over CAM scores: the reference's parameters and pseudo-label
    settings (authors' infer_SEAM / imutils.crf_inference)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    bg_threshold: float = 0.26  # constant background score of the segmentation CRF labels
    low_alpha: float = 4.0  # background (1 - max cam)^alpha: confident foreground (la)
    high_alpha: float = 24.0  # confident background (ha)
    workers: int = 2  # processes of the CRF pool (CPU-bound)


@dataclass
class AffinityConfig:
    """AffinityNet (PSA, used by SEAM for the final pseudo labels): pairs and training crops."""

    radius: int = 5  # pairs within this distance on the stride-8 feature map
    crop_size: int = 448  # training crop; a multiple of 8 (labels are taken at stride 8)
    # Reference: no resize before the crop (train_aff's joint transforms are None); a (low,
    # high) long-side range here resizes image and score maps like DataConfig.resize_long.
    resize_long: tuple[int, int] | None = None
    color_jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)


@dataclass
class RandomWalkConfig:
    """Random walk with AffinityNet affinities (authors' infer_aff defaults)."""

    beta: float = 8.0  # affinity ** beta sharpens the transition matrix
    logt: int = 6  # 2 ** logt random-walk steps, by repeated squaring
    alpha: float = 6.0  # background score (1 - max cam) ** alpha


# --- segment stage: DeepLab-LargeFOV retraining on pseudo labels and its test-time inference ---
@dataclass
class SegmentationConfig:
    """DeepLab-v1 (LargeFOV) on ResNet38 trained on pseudo labels, then multi-scale + flip (+
    CRF) inference; defaults from the authors' semantic-segmentation-codebase, experiment
    seamv1-pseudovoc (the retraining behind the paper's val/test numbers)."""

    train_list: str = "train_aug"
    init_weights: str | None = None  # trunk init (ImageNet / proxy trunk); None: model.weights
    crop_size: int = 448  # random crop; labels padded with 255, images with 0 (normalised)
    scale_range: tuple[float, float] = (0.5, 1.5)  # random rescale of image and label
    hsv_jitter: tuple[int, int, int] = (10, 10, 10)  # +- shifts in OpenCV HSV units (H of 180)
    flip_prob: float = 0.5
    # Reference BatchNorm: batch statistics while training (every BN, trunk included; running
    # statistics with momentum 3e-4), affine terms never in the optimiser (frozen at their init).
    frozen_bn: bool = False  # True: every BN in eval mode with frozen statistics
    bn_momentum: float = 0.0003
    train_bn_affine: bool = False
    test_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    test_flip: bool = True
    # Reference: mean of the upsampled logits over passes, then softmax; "probs" averages the
    # softmax probabilities of the passes instead.
    average: str = "logits"
    crf: bool = True  # dense CRF post-processing (CRFConfig kernels)
    crf_iterations: int = 1  # the reference test runs one mean-field iteration


# SegmentationConfig fields that only change inference (not the trained weights).
TEST_SETTINGS = ("test_scales", "test_flip", "average", "crf", "crf_iterations")


def _seg_train_defaults() -> TrainConfig:
    """The authors' retraining optimiser: SGD momentum 0.9, lr 1e-3 (10x/20x on the new head),
    wd 5e-4, batch 10, 20,000 iterations = 18.9 epochs over train_aug's 10,582 images."""
    return TrainConfig(lr=0.001, weight_decay=5e-4, momentum=0.9, poly_power=0.9,
                       batch_size=10, epochs=19, seed=0, out_dir="runs/voc/train_seg")


@dataclass
class PretrainConfig:
    """The proxy "ImageNet" (data/pretrain_set.py) and the classification training of the
    narrow trunk on it (experiments/pretrain.py); ``trunk`` None: the profile starts from released
    ImageNet weights and has nothing to pretrain."""

    seed: int = 0
    n_distractors: int = 24  # shape classes that never appear in the benchmark
    n_train: int = 300  # images per class
    n_heldout: int = 50  # held-out images per class (top-1 is measured here)
    image_size: int = 48
    batch_size: int = 32
    lr: float = 0.05  # SGD with momentum, cosine decay after a short warm-up
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_norm: bool = True  # weight decay on BN scales/shifts and biases too; False leaves
    # them undecayed, so the trunk's features keep the scale the frozen-BN fine-tuning reads
    epochs: int = 15  # held-out top-1 still rose at 5 epochs (results/proxy/pretrain_log.jsonl)
    out_dir: str = "runs/pretrain"  # checkpoints and the running log
    threads: int | None = None  # torch CPU threads (None: torch's default); 1 is far faster
    # than 2 when other jobs share two cores. Does not change the result.
    trunk: str | None = None  # where the trunk (released ImageNet key layout, fp16) goes
    trunk_sha256: str | None = None  # pinned checksum of the committed trunk


@dataclass
class Config:
    """Every stage's settings for one run. A bare ``Config()`` holds the reference values,
    which are the ``voc`` profile; ``load_config()`` builds ``DEFAULT_PROFILE``."""

    profile: str = "voc"
    device: str = "auto"  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N"
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train_cam: TrainConfig = field(default_factory=TrainConfig)
    cams: CAMConfig = field(default_factory=CAMConfig)
    crf: CRFConfig = field(default_factory=CRFConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    # AffinityNet training: the SEAM code's train_aff settings (lr 0.01; PSA's default is 0.1).
    train_affinity: TrainConfig = field(
        default_factory=lambda: TrainConfig(out_dir="runs/voc/train_affinity"))
    random_walk: RandomWalkConfig = field(default_factory=RandomWalkConfig)
    segment: SegmentationConfig = field(default_factory=SegmentationConfig)
    train_seg: TrainConfig = field(default_factory=_seg_train_defaults)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


# A profile is a set of overrides of the reference defaults: {stage: {field: value}}.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "voc": {},
    # The paper's fine-tuning regime (frozen BN and stem, the authors' optimiser: four groups,
    # lr 0.01, poly, wd 5e-4, batch 8, 8 epochs) from the proxy trunk; each remaining deviation
    # from voc carries its reason.
    "proxy": {
        "data": {"root": "data/proxy/VOC2012", "prepare": "generate",
                 # Images are 96-160 px: the reference's 448 crop and [448, 768] resize scaled.
                 "crop_size": 128, "resize_long": (128, 224),
                 # No hue jitter: the benchmark codes class identity partly in hue (body
                 # families, part colours); the reference's +-0.1 (+-36 deg) swaps them.
                 "color_jitter": (0.3, 0.3, 0.3, 0.0),
                 "num_workers": 2,  # a 2-core CPU
                 "cache_images": True},  # ~150 MB decoded: one JPEG decode per image
        # Width 1/8 so it trains on a CPU; the proxy's counterpart of the ImageNet file.
        "model": {"width": 0.125, "weights": "assets/proxy/pretrain_trunk.pth"},
        # Momentum 0.9, not the momentum-slot quirk's 5e-4: under the quirk the plain-CAM
        # baseline barely learns in the proxy's few steps at width 1/8 (results/proxy/README.md,
        # diagnostics/difficulty_reference_momentum.json). Chosen on baseline runs only; SEAM
        # and the baseline share it.
        "train_cam": {"momentum": 0.9, "out_dir": "runs/proxy/train_cam"},
        # No weight decay on BN scales/shifts and biases while pretraining: the trunk's
        # features keep their scale (diagnostics/probe*.json).
        "pretrain": {"trunk": "assets/proxy/pretrain_trunk.pth", "threads": 1,
                     "decay_norm": False, "trunk_sha256": PROXY_TRUNK_SHA256},
        # AffinityNet and the retraining crop at the benchmark's image size, hue as above.
        "affinity": {"crop_size": 128, "color_jitter": (0.3, 0.3, 0.3, 0.0)},
        # AffinityNet 3 epochs and retraining 9 epochs instead of the reference 8 and 19: the
        # CPU budget; fewer retraining epochs under-activated (diagnostics/pipeline_seg3epochs*).
        "train_affinity": {"epochs": 3, "out_dir": "runs/proxy/train_affinity"},
        # Fewer, gentler walk steps: the proxy's stride-8 maps are 12-20 px a side, where the
        # reference's 2**6 steps at radius 5 spread every CAM over the whole image. Chosen on
        # the seed-0 baseline only (diagnostics/random_walk_sweep_baseline.json).
        "random_walk": {"logt": 1, "alpha": 3.0},
        # BN running statistics at the reference's horizon: its momentum 3e-4 over 20,000 steps
        # scaled to our 2,700 (3e-4 x 20106 / 2700), so they move as far as the reference's
        # (diagnostics/pipeline_seg3epochs_bn3e-4_baseline_metrics.json).
        "segment": {"crop_size": 128, "bn_momentum": 0.00223},
        "train_seg": {"epochs": 9, "out_dir": "runs/proxy/train_seg"},
    },
    # The proxy's benchmark rendered 3.5x larger, under the voc settings (crop 448, resize
    # [448, 768], rescale 0.3, batch 8, 8 epochs, the authors' optimiser): the CAM stage at the
    # paper's geometry, for a GPU. Each remaining deviation from voc carries its
    # reason; stages after the CAMs keep voc's settings, only their folders move.
    "proxy448": {
        "data": {"root": "data/proxy448/VOC2012", "prepare": "generate",
                 # No hue jitter: the benchmark codes class identity partly in hue, as in proxy.
                 "color_jitter": (0.3, 0.3, 0.3, 0.0),
                 "num_workers": 3,  # the GPU host's 16 cores feed up to 5 runs at once
                 "cache_images": True},  # ~2 GB decoded: one JPEG decode per image
        # The proxy's scenes at 3.5x (sides 336-560 px, VOC-like): crop 448 sees what the
        # proxy's crop 128 sees, so the 0.3 branch's map is 17x17 as in the paper, not 5x5.
        "synthetic": {"scale": 3.5},
        # Width 1/8: baseline and SEAM x 3 seeds, with pretraining, fit 10 GPU minutes (1/4 is
        # 4x the convolution work); the proxy's counterpart of the ImageNet file.
        "model": {"width": 0.125, "weights": "assets/proxy448/pretrain_trunk.pth"},
        # Momentum 0.9 as in proxy, chosen on the baseline alone: under the momentum-slot quirk
        # the baseline barely learns at width 1/8 (results/proxy/README.md).
        "train_cam": {"momentum": 0.9, "out_dir": "runs/proxy448/train_cam"},
        # Pretraining objects at the new scale (48 px x 3.5); checksum pinned after a GPU run.
        "pretrain": {"trunk": "assets/proxy448/pretrain_trunk.pth", "image_size": 168,
                     "decay_norm": False, "out_dir": "runs/proxy448/pretrain",
                     "trunk_sha256": None},
        "affinity": {"color_jitter": (0.3, 0.3, 0.3, 0.0)},  # hue as above
        "train_affinity": {"out_dir": "runs/proxy448/train_affinity"},
        "train_seg": {"out_dir": "runs/proxy448/train_seg"},
    },
    "smoke": {
        "data": {"root": "data/smoke/VOC2012", "prepare": "generate", "crop_size": 32,
                 "resize_long": (32, 48), "num_workers": 0, "cache_images": True},
        "synthetic": {"n_train": 12, "n_val": 8, "n_test": 4, "n_extra": 16,
                      "min_size": 40, "max_size": 64},
        "model": {"width": 0.0625, "frozen_bn": False, "frozen_stem": False, "weights": None},
        "train_cam": {"momentum": 0.9, "batch_size": 4, "epochs": 1,
                      "out_dir": "runs/smoke/train_cam"},
        "crf": {"workers": 0},
        "affinity": {"crop_size": 48},
        "train_affinity": {"momentum": 0.9, "batch_size": 4, "epochs": 1,
                           "out_dir": "runs/smoke/train_affinity"},
        "segment": {"crop_size": 32, "test_scales": (0.5, 1.0)},
        "train_seg": {"batch_size": 4, "epochs": 1, "out_dir": "runs/smoke/train_seg"},
        "pretrain": {"n_distractors": 20, "n_train": 2, "n_heldout": 1, "image_size": 32,
                     "batch_size": 16, "epochs": 1, "out_dir": "runs/smoke/pretrain",
                     "trunk": "runs/smoke/pretrain_trunk.pth"},
    },
}


# Named overlays of settings on a profile: the methods and ablations of the paper. A variant
# is scored on the PCM output when its PCM was trained (ECR on), else on the fc8 CAM
# (``uses_pcm``).
BASELINE_LOSS = {"use_er": False, "use_ecr": False, "use_rvmin": False}
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "seam": {},
    # The plain CAM classifier: same data, model and optimiser, classification loss only.
    "baseline": {"loss": BASELINE_LOSS},
    # Components (the paper's ablation of ER, PCM and ECR).
    "er_only": {"loss": {"use_ecr": False, "use_rvmin": False}},
    "pcm_only": {"loss": {"use_er": False}},  # the PCM trained by ECR, no ER
    # The transformation A of ER (rescale 0.3 is the reference). Angle and shift are this
    # implementation's choice: the paper's values are not sourced in this repository.
    "transform_flip": {"loss": {"transform": "flip"}},
    "transform_rotate": {"loss": {"transform": "rotate:15"}},
    "transform_translate": {"loss": {"transform": "translate:15,15"}},
    "transform_rescale_flip": {"loss": {"transform": "rescale:0.3+flip"}},
    "transform_rescale_rotate": {"loss": {"transform": "rescale:0.3+rotate:15"}},
    "transform_rescale_translate": {"loss": {"transform": "rescale:0.3+translate:15,15"}},
    # ER's second branch at a larger scale than the paper's 0.3 (its size on a small crop).
    "seam_rescale05": {"loss": {"transform": "rescale:0.5"}},
    "seam_rescale07": {"loss": {"transform": "rescale:0.7"}},
    # SEAM and the baseline trained under bf16 autocast: an opt-in speed setting, measured
    # against the fp32 runs of the same seed before it is recommended.
    "seam_bf16": {"train_cam": {"amp": "bf16"}},
    "baseline_bf16": {"loss": BASELINE_LOSS, "train_cam": {"amp": "bf16"}},
    # Diagnostic (experiments/geometry.py): both branches' classification alone, no ER or PCM.
    "two_branch_cls": {"loss": {**BASELINE_LOSS, "two_branches": True}},
    # The baseline with a wider random-rescale range (ER is not just augmentation).
    "baseline_wide_aug": {"loss": BASELINE_LOSS, "data": {"resize_long_scale": (0.5, 1.5)}},
}


def uses_pcm(cfg: Config) -> bool:
    """Whether a run's CAMs are the PCM output (its PCM was trained by ECR) or the fc8 CAM."""
    return cfg.loss.use_ecr


def variant_config(cfg: Config, variant: str, seed: int) -> Config:
    """The config of one run: ``cfg`` with the variant's overlay and ``seed`` for every trainer
    (SEAM, AffinityNet, DeepLab; its stages live in ``pipeline.run_folder``)."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    run = apply_overrides(cfg, VARIANTS[variant])
    run.train_cam.seed = run.train_affinity.seed = run.train_seg.seed = seed
    check_bounds(run)
    return run


TRAIN_SECTIONS = ("train_cam", "train_affinity", "train_seg", "pretrain")
# Settings with a range, checked on every config built: setting -> (low, high), inclusive;
# high None: no upper bound. Zero epochs would "train" nothing; a threshold above 1 never fires.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "crf.bg_threshold": (0, 1), "loss.ecr_topk_ratio": (0, 1), "segment.flip_prob": (0, 1),
    **{f"{stage}.{key}": (1, None)
       for stage in TRAIN_SECTIONS for key in ("epochs", "batch_size")},
    **{f"{stage}.seed": (0, None) for stage in (*TRAIN_SECTIONS, "synthetic")},
    "data.crop_size": (1, None), "data.num_workers": (0, None),
    **{f"synthetic.{key}": (1, None) for key in ("n_train", "n_val", "n_test", "min_size",
                                                 "max_size")},
    "synthetic.n_extra": (0, None),
    "crf.iterations": (0, None), "random_walk.logt": (0, None), "random_walk.beta": (0, None),
}
CHOICES: dict[str, tuple[str, ...]] = {  # settings with a fixed set of values
    **{f"{stage}.{key}": values for stage in TRAIN_SECTIONS[:3] for key, values in (
        ("amp", ("auto", "off", "bf16", "fp16")), ("channels_last", ("auto", "on", "off")),
        ("schedule", ("poly", "cosine")))},
}
POSITIVE = ("loss.ecr_topk_ratio",)  # of BOUNDS: zero excluded (ECR over no pixel is no loss)
SCALES = ("cams.scales", "segment.test_scales")  # inference scales: one or more, each above 0
BOOLS = {"true": True, "1": True, "false": False, "0": False}
NONES = ("none", "null")
TOP_LEVEL = ("profile", "device")  # Config fields that are not stages


def type_name(hint: Any) -> str:
    """A readable name of a field's declared type, for error messages."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _split(text: str) -> list[str]:
    """"128,224", "(128, 224)" or "[128,224]" -> ["128", "224"]; "()" -> []."""
    text = text.strip()
    if text[:1] + text[-1:] in ("()", "[]"):
        text = text[1:-1]
    items = [t.strip() for t in text.split(",")]
    return items[:-1] if items[-1] == "" else items  # a trailing comma: "(3,)"


def _convert(value: Any, hint: Any) -> Any:
    """``value`` in the declared type ``hint``: text is parsed, other values are checked (an
    int is accepted as a float, a list as a tuple); raise ValueError when it does not fit."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        text_none = isinstance(value, str) and value.strip().lower() in NONES
        if type(None) in args and (value is None or text_none):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option)
            except ValueError:
                continue
        raise InputError(value)
    if typing.get_origin(hint) is tuple:
        items = _split(value) if isinstance(value, str) else value
        if not isinstance(items, (tuple, list)):
            raise InputError(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in items)
        if len(items) != len(args):
            raise InputError(value)
        return tuple(_convert(v, a) for v, a in zip(items, args, strict=True))
    if isinstance(value, str) and hint is not str:
        text = value.strip()
        if hint is bool:
            if text.lower() not in BOOLS:
                raise InputError(value)
            return BOOLS[text.lower()]
        return hint(text)  # int("2.5") and float("abc") raise ValueError
    if isinstance(value, bool) and hint is not bool:
        raise InputError(value)
    if hint is float and isinstance(value, int):
        return float(value)
    if isinstance(value, hint):
        return value
    raise InputError(value)


def parse_setting(setting: str, value: Any, hint: Any) -> Any:
    """``value`` as the declared type ``hint`` of ``setting``: text (from ``--set``) is parsed,
    Python values are checked. Raise ValueError naming the setting and the expected type."""
    try:
        return _convert(value, hint)
    except ValueError:
        pass
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    base = [a for a in typing.get_args(hint) if a is not type(None)][0] if optional else hint
    examples = {bool: " (true/false/1/0)", tuple: " (comma-separated, e.g. 128,224)"}
    example = examples.get(typing.get_origin(base) or base, "")
    none = " (none or null for None)" if optional else ""
    raise InputError(f"setting {setting}: cannot use {value!r}; expected "
                     f"{type_name(hint)}{example}{none}")


def apply_overrides(cfg: Config, overrides: dict[str, dict[str, Any]]) -> Config:
    """Return a copy of ``cfg`` with ``{stage: {field: value}}`` overrides applied.

    Each value is converted to its field's declared type: strings (e.g. from ``--set``) are
    parsed ("false" -> False, "128,224" -> (128, 224), "none" for optional fields), other
    values are checked. Unknown stages or fields and values that do not fit raise
    ``ValueError`` naming the setting, so a typo never passes silently.
    """
    cfg = copy.deepcopy(cfg)
    for stage, values in overrides.items():
        section = getattr(cfg, stage, None)
        if not dataclasses.is_dataclass(section):
            stages = [f.name for f in dataclasses.fields(cfg) if f.name not in TOP_LEVEL]
            raise InputError(f"unknown config stage {stage!r}; expected one of {stages}")
        hints = typing.get_type_hints(type(section))
        for key, value in values.items():
            if key not in hints:
                raise InputError(f"unknown setting {stage}.{key}; expected one of {sorted(hints)}")
            setattr(section, key, parse_setting(f"{stage}.{key}", value, hints[key]))
    check_bounds(cfg)
    return cfg


def check_bounds(cfg: Config) -> None:
    """Raise an error naming the first setting outside its range or set of values (``BOUNDS``,
    ``POSITIVE``, ``CHOICES``, ``SCALES``), so a bad value stops the command before any work."""
    for setting, (low, high) in BOUNDS.items():
        value = _setting(cfg, setting)
        above = low < value if setting in POSITIVE else low <= value
        if not (above and (high is None or value <= high)):  # NaN fails too
            bracket = "(" if setting in POSITIVE else "["
            expected = (f"a value in {bracket}{low}, {high}]" if high is not None
                        else f"at least {low}")
            _refuse(setting, value, expected)
    for setting, values in CHOICES.items():
        if _setting(cfg, setting) not in values:
            _refuse(setting, _setting(cfg, setting), f"one of {', '.join(values)}")
    for setting in SCALES:
        scales = _setting(cfg, setting)
        if not scales or not all(s > 0 for s in scales):
            _refuse(setting, scales, "one or more scales above 0, e.g. 1.0 or 0.5,1.0")


def _setting(cfg: Config, setting: str) -> Any:
    """The value of ``stage.key``."""
    stage, key = setting.split(".")
    return getattr(getattr(cfg, stage), key)


def _refuse(setting: str, value: Any, expected: str) -> None:
    """The one-line error of a setting out of range."""
    raise InputError(f"setting {setting}: cannot use {value!r}; expected {expected} "
                     f"(--set {setting}=VALUE)")


def load_config(profile: str = DEFAULT_PROFILE, overrides: dict[str, dict[str, Any]] | None = None,
                data_root: str | Path | None = None) -> Config:
    """Build the configuration of a profile, then apply user overrides."""
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; expected one of {PROFILES_NAMES}")
    cfg = apply_overrides(Config(profile=profile), PROFILES[profile])
    cfg = apply_overrides(cfg, overrides or {})
    if data_root is not None:
        cfg.data.root = str(data_root)
    return cfg
