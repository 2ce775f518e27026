"""Paired image/mask transforms of the mmsegmentation training pipeline,
written as torchvision.transforms.v2 transforms.

A sample is the pair ``(tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask
int64 [H, W])``; geometric transforms move both, photometric ones touch the
image only (v2 passes a Mask through them). Random numbers come from torch's
global generator, so seeding torch before a sample (as the training loader
does) fixes its augmentation.

The training pipeline of the configs, in order:
    RandomRescale (ratio 0.5..2.0 of the preset's scale, aspect kept)
    RandomCropCatMax (crop size, at most 75% of labelled pixels from one class)
    RandomHorizontalFlip (p = 0.5)
    PhotoMetricDistortion
    to float, Normalize (ImageNet mean / std)
    PadTo (crop size; image 0 after normalization, mask 255)
"""
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from psanet_lite.configs.schema import IMAGENET_MEAN, IMAGENET_STD
from psanet_lite.data.labels import IGNORE_INDEX


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def _coin() -> bool:
    return bool(torch.randint(0, 2, ()).item())


def _maybe_uniform(low: float, high: float):
    """U(low, high) with probability 1/2, else None (the step is skipped)."""
    return _uniform(low, high) if _coin() else None


def _size(flat_inputs) -> tuple[int, int]:
    """(H, W) of the sample: of its Image or Mask, else of a plain image tensor."""
    tensors = [t for t in flat_inputs if isinstance(t, (tv_tensors.Image, tv_tensors.Mask))]
    tensors = tensors or [t for t in flat_inputs if isinstance(t, torch.Tensor)]
    if not tensors:
        raise TypeError("expected an image tensor (tv_tensors.Image or [..., H, W] tensor) in the sample")
    height, width = F.get_size(tensors[0])
    return height, width


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """Size after an aspect-keeping resize that fits ``scale`` (mmcv's rule).

    The long side may be at most max(scale) and the short side at most
    min(scale); the smaller of the two factors wins.

    Example:
        >>> rescale_size(1024, 2048, (2048, 512))
        (512, 1024)
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class Rescale(v2.Transform):
    """Aspect-keeping resize to fit ``scale`` = (long side, short side) limits.

    Images are resized bilinearly without antialiasing (as OpenCV does in
    mmsegmentation), masks by nearest neighbour.

    Example:
        >>> image = tv_tensors.Image(torch.zeros(3, 100, 200, dtype=torch.uint8))
        >>> Rescale((2048, 512))(image).shape
        torch.Size([3, 512, 1024])
    """

    def __init__(self, scale: tuple[int, int]):
        super().__init__()
        self.scale = tuple(scale)

    def make_params(self, flat_inputs):
        return {"size": rescale_size(*_size(flat_inputs), self.scale)}

    def transform(self, inpt, params):
        return self._call_kernel(F.resize, inpt, size=list(params["size"]), antialias=False)


class RandomRescale(Rescale):
    """``Rescale`` to ``scale`` times a ratio drawn uniformly from ``ratio_range``.

    Example:
        >>> pair = (tv_tensors.Image(torch.zeros(3, 64, 128, dtype=torch.uint8)),
        ...         tv_tensors.Mask(torch.zeros(64, 128, dtype=torch.int64)))
        >>> image, mask = RandomRescale((128, 64), (0.5, 2.0))(pair)
        >>> image.shape[-2:] == mask.shape[-2:]
        True
    """

    def __init__(self, scale: tuple[int, int], ratio_range: tuple[float, float] = (0.5, 2.0)):
        super().__init__(scale)
        self.ratio_range = tuple(ratio_range)

    def make_params(self, flat_inputs):
        ratio = _uniform(*self.ratio_range)
        scale = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        return {"size": rescale_size(*_size(flat_inputs), scale)}


class RandomCropCatMax(v2.Transform):
    """Random crop of ``size`` = (h, w) in which no class covers more than
    ``cat_max_ratio`` of the labelled pixels (mmsegmentation's RandomCrop).

    Up to 10 crops are redrawn until one holds at least two classes and none
    above the ratio; otherwise the last draw is kept. A side shorter than the
    crop is kept whole (``PadTo`` fills it up later).

    Example:
        >>> pair = (tv_tensors.Image(torch.zeros(3, 64, 64, dtype=torch.uint8)),
        ...         tv_tensors.Mask(torch.arange(64).repeat(64, 1) // 16))
        >>> image, mask = RandomCropCatMax((32, 32))(pair)
        >>> tuple(mask.shape)
        (32, 32)
    """

    def __init__(self, size: tuple[int, int], cat_max_ratio: float = 0.75, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.size = tuple(size)
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index

    def _draw(self, height: int, width: int) -> tuple[int, int, int, int]:
        top = int(torch.randint(0, max(height - self.size[0], 0) + 1, ()).item())
        left = int(torch.randint(0, max(width - self.size[1], 0) + 1, ()).item())
        return top, left, min(self.size[0], height), min(self.size[1], width)

    def make_params(self, flat_inputs):
        height, width = _size(flat_inputs)
        box = self._draw(height, width)
        masks = [inpt for inpt in flat_inputs if isinstance(inpt, tv_tensors.Mask)]
        if self.cat_max_ratio < 1.0 and masks:
            for _ in range(10):
                top, left, h, w = box
                crop = masks[0][..., top : top + h, left : left + w]
                _, counts = torch.unique(crop[crop != self.ignore_index], return_counts=True)
                if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                    break
                box = self._draw(height, width)
        return {"box": box}

    def transform(self, inpt, params):
        top, left, h, w = params["box"]
        return self._call_kernel(F.crop, inpt, top=top, left=left, height=h, width=w)


class PhotoMetricDistortion(v2.Transform):
    """mmsegmentation's photometric distortion on a uint8 image; masks pass.

    Each step happens with probability 1/2: brightness + U(-32, 32); contrast
    x U(0.5, 1.5) (before or after the colour steps, by a coin); saturation x
    U(0.5, 1.5); hue shifted by up to 18 of OpenCV's 180 hue steps. Saturation
    uses torchvision's blend with the gray image rather than scaling S in HSV.

    Example:
        >>> image = tv_tensors.Image(torch.full((3, 8, 8), 100, dtype=torch.uint8))
        >>> PhotoMetricDistortion()(image).dtype
        torch.uint8
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, brightness_delta: int = 32, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta: int = 18):
        super().__init__()
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta

    def make_params(self, flat_inputs):
        brightness = _maybe_uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = _coin()
        contrast = _maybe_uniform(*self.contrast_range)
        saturation = _maybe_uniform(*self.saturation_range)
        hue = int(torch.randint(-self.hue_delta, self.hue_delta + 1, ()).item()) if _coin() else None
        return {"brightness": brightness, "contrast_first": contrast_first, "contrast": contrast,
                "saturation": saturation, "hue": hue}

    @staticmethod
    def _affine(image: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
        # uint8 after every step, as mmsegmentation's convert() does
        return (image.float() * alpha + beta).clamp(0, 255).to(torch.uint8)

    def transform(self, inpt, params):
        image = inpt.as_subclass(torch.Tensor)  # [3, H, W] uint8
        if params["brightness"] is not None:
            image = self._affine(image, 1.0, params["brightness"])
        if params["contrast_first"] and params["contrast"] is not None:
            image = self._affine(image, params["contrast"], 0.0)
        if params["saturation"] is not None:
            image = F.adjust_saturation(image, params["saturation"])
        if params["hue"] is not None:
            image = F.adjust_hue(image, params["hue"] / 180.0)
        if not params["contrast_first"] and params["contrast"] is not None:
            image = self._affine(image, params["contrast"], 0.0)
        return tv_tensors.wrap(image, like=inpt)


class PadTo(v2.Transform):
    """Pad bottom and right up to ``size`` = (h, w): image with 0, mask with
    ``ignore_index``; sides already as large are left alone.

    Example:
        >>> pair = (tv_tensors.Image(torch.ones(3, 5, 6)), tv_tensors.Mask(torch.zeros(5, 6, dtype=torch.int64)))
        >>> image, mask = PadTo((8, 8))(pair)
        >>> tuple(image.shape), int(mask[7, 7])
        ((3, 8, 8), 255)
    """

    def __init__(self, size: tuple[int, int], ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.size = tuple(size)
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs):
        height, width = _size(flat_inputs)
        return {"padding": [0, 0, max(self.size[1] - width, 0), max(self.size[0] - height, 0)]}

    def transform(self, inpt, params):
        fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else 0
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)


def normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """uint8 image -> float32 (x - mean) / std with mean and std on the 0..255
    pixel scale, as mmsegmentation's configs give them; masks pass.

    Example:
        >>> image = tv_tensors.Image(torch.full((3, 2, 2), 255, dtype=torch.uint8))
        >>> round(normalize()(image)[0, 0, 0].item(), 3)
        2.249
    """
    return v2.Compose([
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=False),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])


def train_transforms(crop_size, scale=None, ratio_range=(0.5, 2.0), cat_max_ratio: float = 0.75,
                     flip_prob: float = 0.5, photometric: bool = True, ignore_index: int = IGNORE_INDEX,
                     mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """The configs' training pipeline for (image, mask) pairs.

    Args:
        crop_size: (h, w) of the training crop.
        scale: (long, short) size limits that ratio 1.0 resizes to; None skips
            the random resize.
        ratio_range: range of the random resize ratio.
        cat_max_ratio: largest share one class may hold in a crop (1.0: no check).
        photometric: apply PhotoMetricDistortion.

        mean, std: per-channel RGB normalisation on the 0..255 scale.

    Returns a v2.Compose mapping (Image uint8 [3, H, W], Mask [H, W]) to
    (Image float32 [3, h, w], Mask int64 [h, w]) with (h, w) = crop_size.

    Example:
        >>> pipeline = train_transforms((32, 32), scale=(64, 32))
        >>> pair = (tv_tensors.Image(torch.zeros(3, 40, 80, dtype=torch.uint8)),
        ...         tv_tensors.Mask(torch.zeros(40, 80, dtype=torch.int64)))
        >>> [tuple(t.shape) for t in pipeline(pair)]
        [(3, 32, 32), (32, 32)]
    """
    steps = []
    if scale is not None:
        steps.append(RandomRescale(scale, ratio_range))
    steps.append(RandomCropCatMax(crop_size, cat_max_ratio, ignore_index))
    if flip_prob > 0:
        steps.append(v2.RandomHorizontalFlip(flip_prob))
    if photometric:
        steps.append(PhotoMetricDistortion())
    steps += [normalize(mean, std), PadTo(crop_size, ignore_index)]
    return v2.Compose(steps)


def eval_transforms(scale=None, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """The configs' test pipeline for an image (uint8 [3, H, W] tensor or PIL
    image): aspect-keeping ``Rescale`` to
    ``scale`` (None: keep the size), then normalization. Labels are not
    resized at test time: predictions are resized back to the label instead.

    Example:
        >>> image = tv_tensors.Image(torch.zeros(3, 1024, 2048, dtype=torch.uint8))
        >>> eval_transforms((2048, 512))(image).shape
        torch.Size([3, 512, 1024])
    """
    steps = [v2.ToImage()]  # a plain uint8 tensor (or PIL image) is taken as the image
    steps += [Rescale(scale)] if scale is not None else []
    return v2.Compose(steps + [normalize(mean, std)])


def build_train_transforms(data) -> v2.Compose:
    """``train_transforms`` with the settings of a DataConfig (``config.data``).

    Example:
        >>> from psanet_lite.configs import get_config
        >>> pipeline = build_train_transforms(get_config("psanet_lite_context").data)
    """
    return train_transforms(
        crop_size=data.crop_size, scale=data.scale, ratio_range=data.ratio_range,
        cat_max_ratio=data.cat_max_ratio, flip_prob=data.flip_prob,
        photometric=data.photometric_distortion, ignore_index=data.ignore_index,
        mean=data.mean, std=data.std,
    )


def build_eval_transforms(data) -> v2.Compose:
    """``eval_transforms`` with the test scale and normalisation of a DataConfig."""
    return eval_transforms(scale=data.scale, mean=data.mean, std=data.std)
