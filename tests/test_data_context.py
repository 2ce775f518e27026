"""The procedural context dataset: deterministic, and only the far-away cue tells the class."""
import numpy as np
import pytest
import torch

from psanet_lite.data.context import CUE_COLOURS, ContextDataset, make_context_sample


def _cue_pixels(image):
    """Pixels that are clearly coloured (everything else is grey)."""
    rgb = image.astype(int)
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 40


@pytest.fixture(scope="module")
def samples():
    return [make_context_sample(np.random.default_rng((7, i))) for i in range(40)]


def test_same_seed_same_sample_other_split_other_sample():
    a, b = ContextDataset("train", length=3, seed=4), ContextDataset("train", length=3, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
    assert not torch.equal(a[2][0], ContextDataset("val", length=3, seed=4)[2][0])
    assert not torch.equal(a[2][0], ContextDataset("train", length=3, seed=5)[2][0])


def test_items_are_tv_tensors_with_four_classes():
    image, mask = ContextDataset("val", length=1)[0]
    assert image.shape == (3, 128, 128) and image.dtype == torch.uint8
    assert mask.shape == (128, 128) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}


def test_only_colour_is_the_cue_band_along_one_side(samples):
    sides = set()
    for image, _ in samples:
        cue = _cue_pixels(image)
        rows, cols = np.nonzero(cue)
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        assert cue.sum() == 16 * 128  # one full band, 16 px wide
        if bottom - top == 15:
            sides.add("top" if top == 0 else "bottom")
            assert top in (0, 112) and (left, right) == (0, 127)
        else:
            sides.add("left" if left == 0 else "right")
            assert left in (0, 112) and right - left == 15 and (top, bottom) == (0, 127)
    assert sides == {"top", "bottom", "left", "right"}


def test_object_class_is_the_cue_colour(samples):
    for image, label in samples:
        cue_colour = image[_cue_pixels(image)].mean(axis=0)
        nearest = int(np.argmin([np.abs(cue_colour - np.array(c)).sum() for c in CUE_COLOURS]))
        assert set(np.unique(label).tolist()) == {0, nearest + 1}


def test_objects_look_the_same_in_every_class(samples):
    # every object pixel is grey: a dark outline (40) or a light fill drawn
    # around 205, whatever the class
    fills = {}
    for image, label in samples:
        pixels = image[label > 0]
        assert (pixels.max(axis=1) == pixels.min(axis=1)).all()
        grey = pixels[:, 0].astype(float)
        fills.setdefault(int(label.max()), []).extend(grey[grey != 40])
    assert sorted(fills) == [1, 2, 3]
    for values in fills.values():
        assert abs(np.mean(values) - 205) < 1 and 4 < np.std(values) < 8


def test_cue_is_far_from_every_object(samples):
    for image, label in samples:
        cue = np.argwhere(_cue_pixels(image))
        objects = np.argwhere(label > 0)
        chebyshev = np.abs(objects[:, None, :] - cue[None, :, :]).max(axis=2)
        assert chebyshev.min() > 76  # the lite FCN reaches 74 px (data/README.md)


def test_too_small_an_image_is_refused():
    with pytest.raises(ValueError, match="need size >= .* = 121"):
        ContextDataset(size=119)
