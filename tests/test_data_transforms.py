"""Paired transforms: geometry moves image and mask together, colour touches the image only."""
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from psanet_lite.configs import get_config
from psanet_lite.data.transforms import (
    PadTo,
    PhotoMetricDistortion,
    RandomCropCatMax,
    RandomRescale,
    Rescale,
    build_train_transforms,
    eval_transforms,
    normalize,
    rescale_size,
    train_transforms,
)


def _pair(height, width, mask=None):
    """An image whose first channel equals the mask, so alignment can be checked."""
    if mask is None:
        mask = torch.arange(height * width).reshape(height, width) % 200
    image = torch.stack([mask, mask // 2, torch.zeros_like(mask)]).to(torch.uint8)
    return tv_tensors.Image(image), tv_tensors.Mask(mask.long())


@pytest.mark.parametrize("size, scale, expected", [
    ((1024, 2048), (2048, 1024), (1024, 2048)),  # Cityscapes at scale 1
    ((1024, 2048), (2048, 512), (512, 1024)),    # short side 512
    ((375, 500), (2048, 512), (512, 683)),       # VOC: 512/375 = 1.3653, 500 * 1.3653 = 682.7
    ((500, 4000), (2048, 512), (256, 2048)),     # the long side limits
])
def test_rescale_size_by_hand(size, scale, expected):
    assert rescale_size(*size, scale) == expected


def test_rescale_moves_mask_by_nearest_neighbour():
    image, mask = Rescale((64, 32))(_pair(16, 32))
    assert image.shape == (3, 32, 64) and mask.shape == (32, 64)
    assert set(mask.unique().tolist()) <= set(range(200))  # no blended label values
    assert torch.equal(mask[::2, ::2], _pair(16, 32)[1])


def test_random_rescale_ratio_range():
    torch.manual_seed(0)
    sides = {RandomRescale((100, 50), (0.5, 2.0))(_pair(50, 100))[1].shape[1] for _ in range(30)}
    assert min(sides) >= 50 and max(sides) <= 200 and len(sides) > 10


def test_crop_keeps_image_and_mask_aligned_and_flip_too():
    torch.manual_seed(1)
    pipeline = v2.Compose([RandomCropCatMax((7, 9), cat_max_ratio=1.0), v2.RandomHorizontalFlip(1.0)])
    for _ in range(5):
        image, mask = pipeline(_pair(20, 30))
        assert mask.shape == (7, 9)
        assert torch.equal(image[0].long(), mask)


def test_crop_avoids_a_dominant_class():
    # left half class 1, right half class 0: a random 24x24 crop of the 64x64
    # map is one class for more than 75% in about 3 of 4 draws; with up to 10
    # redraws that falls to about 3 in 100
    mask = torch.zeros(64, 64, dtype=torch.long)
    mask[:, :32] = 1

    def dominated_share(cat_max_ratio):
        crop = RandomCropCatMax((24, 24), cat_max_ratio=cat_max_ratio)
        torch.manual_seed(0)
        shares = [(crop(_pair(64, 64, mask))[1] == 1).float().mean().item() for _ in range(60)]
        return sum(max(s, 1 - s) >= 0.75 for s in shares) / len(shares)

    assert dominated_share(1.0) > 0.5
    assert dominated_share(0.75) < 0.15


def test_crop_ignores_ignore_index_when_counting():
    mask = torch.full((8, 8), 255)
    mask[0, 0] = 1  # the only labelled pixel: one class, so the check never passes, yet a crop comes out
    _, out = RandomCropCatMax((4, 4))(_pair(8, 8, mask))
    assert out.shape == (4, 4)


def test_crop_larger_than_image_then_pad():
    image, mask = v2.Compose([RandomCropCatMax((10, 12), 1.0), PadTo((10, 12))])(_pair(6, 8))
    assert image.shape == (3, 10, 12) and mask.shape == (10, 12)
    assert (image[:, 6:] == 0).all() and (image[:, :, 8:] == 0).all()
    assert (mask[6:] == 255).all() and (mask[:, 8:] == 255).all()
    assert torch.equal(mask[:6, :8], _pair(6, 8)[1])


def test_photometric_steps_by_hand():
    image, mask = _pair(4, 4)
    distortion = PhotoMetricDistortion()
    params = {"brightness": 100.0, "contrast_first": True, "contrast": 2.0, "saturation": None, "hue": None}
    out = distortion.transform(image, params)
    expected = ((image.float() + 100).clamp(0, 255).to(torch.uint8).float() * 2).clamp(0, 255).to(torch.uint8)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    torch.manual_seed(3)
    _, same_mask = distortion((image, mask))
    assert torch.equal(same_mask, mask)


def test_normalize_uses_mmseg_mean_and_std():
    image = tv_tensors.Image(torch.full((3, 2, 2), 200, dtype=torch.uint8))
    out = normalize()(image)
    assert out.dtype == torch.float32
    assert torch.allclose(out[:, 0, 0], torch.tensor([(200 - 123.675) / 58.395, (200 - 116.28) / 57.12,
                                                      (200 - 103.53) / 57.375]))


def test_train_pipeline_shapes_and_seeded_repeatability():
    pipeline = train_transforms((32, 48), scale=(96, 48))
    torch.manual_seed(5)
    first = pipeline(_pair(40, 80))
    torch.manual_seed(5)
    second = pipeline(_pair(40, 80))
    assert first[0].shape == (3, 32, 48) and first[0].dtype == torch.float32
    assert first[1].shape == (32, 48) and first[1].dtype == torch.int64
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_pipeline_from_a_preset():
    data = get_config("psanet_r50-d8_512x512_80k_ade20k").data
    steps = [type(t).__name__ for t in build_train_transforms(data).transforms]
    assert steps == ["RandomRescale", "RandomCropCatMax", "RandomHorizontalFlip", "PhotoMetricDistortion",
                     "Compose", "PadTo"]
    assert eval_transforms((2048, 512))(_pair(300, 400)[0]).shape == (3, 512, 683)
