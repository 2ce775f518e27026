"""The configuration of one experiment: what to build, what to train on, how to train and test.

A Config holds four nested dataclasses plus the published result it reproduces:

    Config(name, model=ModelConfig, data=DataConfig, train=TrainConfig, test=TestConfig,
           published=PublishedResult | None, notes=str)

Configs are plain data: `to_dict()` gives builtins only (safe in a weights_only
checkpoint, printable as JSON), `Config.from_dict` reads it back, and `replace(...)`
returns a modified copy without touching the original:

    cfg = get_config("psanet_r50-d8_512x1024_40k_cityscapes")
    small = cfg.replace(num_classes=5, iterations=100)          # unique field names
    small = cfg.replace(**{"data.crop_size": (64, 64)})         # section.field
    small = cfg.replace(model={"psa_type": "collect"})          # a section as a dict
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from psanet_lite.configs.validation import check_fields, limited

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255 pixel scale (mmsegmentation's img_norm_cfg)
IMAGENET_STD = (58.395, 57.12, 57.375)

BACKBONES = ("resnetv1c", "torchvision", "lite")
DECODE_HEADS = ("psa", "fcn", "pool", "ppm", "nonlocal")
PSA_TYPES = ("collect", "distribute", "bi", "bi-direction")  # 'bi-direction': mmsegmentation's name
TEST_MODES = ("whole", "slide")
OPTIMIZERS = ("sgd",)


@dataclass
class ModelConfig:
    """What to build. Defaults are mmsegmentation's psanet_r50-d8 (Cityscapes).

    Attributes:
        backbone: 'resnetv1c' (published models), 'torchvision' (dilated torchvision ResNet,
            for its ImageNet weights) or 'lite' (the book's small CPU backbone).
        depth: 50 or 101 (not used by 'lite').
        backbone_weights: path of ImageNet backbone weights already on disk (torchvision's
            ``resnet50-*.pth`` for 'torchvision', mmsegmentation's resnet50_v1c for 'resnetv1c');
            nothing is downloaded.
        load_from: path of a psanet-lite checkpoint whose weights start the whole model
            (mmsegmentation's ``load_from``: fine-tuning from an earlier run); its
            architecture must be this config's. Applied when a model is built without a
            checkpoint; resuming a run restores its own weights instead.
        decode_head: 'psa' or 'fcn' (the no-attention baseline for ablations).
        channels: width inside the PSA head.
        fcn_channels: width of the 'fcn' baseline head; None picks the width whose parameter
            count matches the PSA head it replaces.
        psa_type ... fused: see psanet_lite.models.PSAHead.
        aux_head, aux_channels: the FCN auxiliary head on stage 3 (training only).
        align_corners: for upsampling the logits to the input size.
    """

    backbone: Literal[BACKBONES] = "resnetv1c"
    depth: int = 50
    backbone_weights: str | None = None
    load_from: str | None = None
    in_channels: int = limited(3, ge=1)
    decode_head: Literal[DECODE_HEADS] = "psa"
    channels: int = limited(512, ge=1)
    psa_type: Literal[PSA_TYPES] = "bi"
    compact: bool = False
    shrink_factor: int = limited(2, ge=1)
    mask_size: tuple[int, int] = limited((97, 97), ge=1)
    normalization_factor: float | None = limited(1.0, gt=0)
    psa_softmax: bool = True
    softmax: str = "reference"
    proj_padding: int = limited(1, ge=0)
    psa_backend: str | None = None
    fused: bool = False
    dropout: float = limited(0.1, ge=0, lt=1)
    fcn_channels: int | None = limited(None, ge=1)
    aux_head: bool = True
    aux_channels: int = limited(256, ge=1)
    align_corners: bool = False

    def __post_init__(self):
        check_fields(self, "model")
        if self.backbone != "lite":
            _check_choice("model.depth", self.depth, (50, 101))


@dataclass
class DataConfig:
    """What to train and test on, and the training augmentation (mmsegmentation's pipeline).

    Attributes:
        num_classes: classes predicted (19 Cityscapes, 150 ADE20K, 21 VOC); the data
            module sets it for the procedural 'context' dataset.
        crop_size: (h, w) of the training crops.
        scale: (long side, short side) the images are resized to before the random ratio
            in ratio_range (training) and for testing, keeping the aspect ratio.
        cat_max_ratio: a crop is re-drawn (up to 10 times) if one class covers more of it.
        reduce_zero_label: label 0 means "other" and is ignored; other labels shift down by 1 (ADE20K).
        mean, std: RGB normalisation on the 0-255 pixel scale.
    """

    dataset: str = "cityscapes"
    num_classes: int = limited(19, ge=1)
    crop_size: tuple[int, int] = limited((512, 1024), ge=1)
    scale: tuple[int, int] = limited((2048, 1024), ge=1)
    ratio_range: tuple[float, float] = limited((0.5, 2.0), gt=0)
    cat_max_ratio: float = limited(0.75, gt=0, le=1)
    flip_prob: float = limited(0.5, ge=0, le=1)
    photometric_distortion: bool = True
    ignore_index: int = limited(255, ge=0)
    reduce_zero_label: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = limited(IMAGENET_STD, gt=0)

    def __post_init__(self):
        check_fields(self, "data")
        low, high = self.ratio_range
        if low > high:
            raise ValueError(f"data.ratio_range must be (low, high) with low <= high, got {self.ratio_range!r}")


@dataclass
class TrainConfig:
    """How to train: SGD with a polynomial ("poly") learning-rate decay by iteration.

    lr(i) = (lr - min_lr) * (1 - i / iterations) ** lr_power + min_lr.
    batch_size is the total over all GPUs; batch_per_gpu what each one holds
    (the published runs used 4 GPUs). The loss is cross-entropy on the main logits plus
    aux_weight times cross-entropy on the auxiliary logits. eval_interval 0 turns the
    periodic validation off; optimizer is 'sgd' (the only one the published runs use).
    """

    iterations: int = limited(40000, ge=1)
    batch_size: int = limited(8, ge=1)
    batch_per_gpu: int = limited(2, ge=1)
    optimizer: Literal[OPTIMIZERS] = "sgd"
    lr: float = limited(0.01, gt=0)
    momentum: float = limited(0.9, ge=0, lt=1)
    weight_decay: float = limited(5e-4, ge=0)
    lr_power: float = limited(0.9, ge=0)
    min_lr: float = limited(1e-4, ge=0)
    aux_weight: float = limited(0.4, ge=0)
    sync_bn: bool = True
    eval_interval: int = limited(4000, ge=0)
    checkpoint_interval: int = limited(4000, ge=1)

    def __post_init__(self):
        check_fields(self, "train")
        if self.batch_size % self.batch_per_gpu:
            raise ValueError(
                f"train.batch_size ({self.batch_size}) must be a multiple of train.batch_per_gpu "
                f"({self.batch_per_gpu})"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"train.min_lr must be <= train.lr ({self.lr}), got {self.min_lr!r}")

    @property
    def gpus(self):
        """Number of GPUs the total batch is split over."""
        return self.batch_size // self.batch_per_gpu


@dataclass
class TestConfig:
    """How to test.

    Attributes:
        mode: 'whole' (the whole resized image at once) or 'slide' (crop_size windows
            every stride pixels, logits averaged where they overlap).
        ms_ratios, flip: the multi-scale + flip evaluation behind "mIoU(ms+flip)".
    """

    mode: Literal[TEST_MODES] = "whole"
    crop_size: tuple[int, int] | None = limited(None, ge=1)
    stride: tuple[int, int] | None = limited(None, ge=1)
    ms_ratios: tuple[float, ...] = limited((0.5, 0.75, 1.0, 1.25, 1.5, 1.75), gt=0)
    flip: bool = True

    def __post_init__(self):
        check_fields(self, "test")
        if self.mode == "slide" and (self.crop_size is None or self.stride is None):
            raise ValueError("test.mode 'slide' needs test.crop_size and test.stride")


@dataclass
class PublishedResult:
    """A row of mmsegmentation's PSANet results table (metadata; nothing is downloaded).

    miou / miou_ms_flip: single-scale and multi-scale + flip mIoU (%) on the val set.
    memory_gb: training memory per GPU; fps: inference speed; None where the table has '-'.
    """

    miou: float
    miou_ms_flip: float
    memory_gb: float | None
    fps: float | None
    device: str
    mmseg_config: str
    checkpoint_url: str
    log_url: str

    def __post_init__(self):
        check_fields(self, "published")


@dataclass
class Config:
    """One named experiment. See the module docstring for copying with overrides."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    published: PublishedResult | None = None
    notes: str = ""

    def __post_init__(self):
        check_fields(self, "config")

    def to_dict(self):
        """Nested dict of builtins (tuples stay tuples), e.g. for a checkpoint or JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; lists (from JSON) become tuples again; unknown keys are an error.

        >>> from psanet_lite.configs import get_config
        >>> Config.from_dict(get_config("psanet_lite_context").to_dict()).name
        'psanet_lite_context'
        """
        d = dict(d)
        sections = {}
        for name, kind in _SECTIONS.items():
            value = d.pop(name, None)
            if value is not None:
                sections[name] = _dataclass_from_dict(kind, value, name)
        published = d.pop("published", None)
        if published is not None:
            sections["published"] = _dataclass_from_dict(PublishedResult, published, "published")
        unknown = set(d) - {"name", "notes"}
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**d, **sections)

    def replace(self, **overrides):
        """A deep copy with fields changed; the original is untouched.

        Each keyword is a section name with a dict of its fields (model={...}),
        'section.field' (via ``**{'data.crop_size': (64, 64)}``), a field name that exists
        in exactly one section (num_classes, mask_size, iterations ...), or name/notes.

        >>> from psanet_lite.configs import get_config
        >>> get_config("psanet_lite_context").replace(psa_type="collect").model.psa_type
        'collect'
        """
        updates = {name: {} for name in _SECTIONS}
        top = {}
        for key, value in overrides.items():
            if key in _SECTIONS:
                if dataclasses.is_dataclass(value):
                    value = dataclasses.asdict(value)
                if not isinstance(value, dict):
                    raise TypeError(f"override {key!r} must be a dict of {key} fields, got {type(value).__name__}")
                for sub, sub_value in value.items():
                    updates[key][_check_field(key, sub)] = sub_value
            elif "." in key:
                section, sub = key.split(".", 1)
                if section not in _SECTIONS:
                    raise ValueError(f"unknown config section {section!r} in {key!r}; sections: {list(_SECTIONS)}")
                updates[section][_check_field(section, sub)] = value
            elif key in ("name", "notes", "published"):
                top[key] = value
            else:
                owners = [s for s, kind in _SECTIONS.items() if key in _field_names(kind)]
                if not owners:
                    raise ValueError(f"unknown config field {key!r}")
                if len(owners) > 1:
                    raise ValueError(
                        f"config field {key!r} exists in {owners}; say which, e.g. {owners[0]}.{key}"
                    )
                updates[owners[0]][key] = value
        new = copy.deepcopy(self)
        for section, changes in updates.items():
            if changes:
                setattr(new, section, dataclasses.replace(getattr(new, section), **changes))
        return dataclasses.replace(new, **top)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "test": TestConfig}


def _field_names(kind):
    return {f.name for f in dataclasses.fields(kind)}


def _check_field(section, name):
    if name not in _field_names(_SECTIONS[section]):
        raise ValueError(f"{section} has no field {name!r}; fields: {sorted(_field_names(_SECTIONS[section]))}")
    return name


def _dataclass_from_dict(kind, values, where):
    if not isinstance(values, dict):
        raise TypeError(f"config section {where!r} must be a dict, got {type(values).__name__}")
    unknown = set(values) - _field_names(kind)
    if unknown:
        raise ValueError(f"unknown keys in config section {where!r}: {sorted(unknown)}")
    return kind(**values)


def _check_choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")
