"""The marker dataset: deterministic, and an object's class is the colour at the offset its shape selects."""
import numpy as np
import pytest
import torch

from psanet_lite.data.markers import MARKER_COLOURS, OFFSETS, MarkerDataset, make_marker_sample


def _colour_index(pixels):
    """Nearest marker colour of each RGB pixel [P, 3] -> [P] ints, or -1 for grey pixels."""
    pixels = pixels.astype(int)
    grey = (pixels.max(axis=1) - pixels.min(axis=1)) < 40
    distance = np.abs(pixels[:, None, :] - np.array(MARKER_COLOURS)[None]).sum(axis=2)  # [P, 3]
    return np.where(grey, -1, distance.argmin(axis=1))


@pytest.fixture(scope="module")
def samples():
    return [make_marker_sample(np.random.default_rng((3, i))) for i in range(60)]


def test_same_seed_same_sample_other_split_other_sample():
    a, b = MarkerDataset("train", length=3, seed=4), MarkerDataset("train", length=3, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
    assert not torch.equal(a[2][0], MarkerDataset("val", length=3, seed=4)[2][0])
    assert not torch.equal(a[2][0], MarkerDataset("train", length=3, seed=5)[2][0])


def test_items_are_tv_tensors_with_four_classes():
    image, mask = MarkerDataset("val", length=1)[0]
    assert image.shape == (3, 128, 128) and image.dtype == torch.uint8
    assert mask.shape == (128, 128) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}


def test_every_object_pixel_takes_the_colour_at_its_shapes_offset(samples):
    # read from the image itself: the pixel at p + offset is a marker pixel of the label's colour
    checked = 0
    for image, label, objects in samples:
        for o in objects:
            dy, dx = OFFSETS[o["shape"]]
            (cy, cx), r = o["centre"], o["radius"]
            ys, xs = np.nonzero(label[cy - r:cy + r + 1, cx - r:cx + r + 1] > 0)
            ys, xs = ys + cy - r, xs + cx - r
            seen = _colour_index(image[ys + dy, xs + dx])
            assert (seen == label[ys, xs] - 1).all()
            checked += len(ys)
    assert checked > 10000


def test_the_other_offset_mostly_shows_another_colour(samples):
    # a decoy: at the offset the object's shape does not select there is, most of the time,
    # a marker of a different colour, so looking at both offsets cannot decide
    decoyed, total = 0, 0
    for image, label, objects in samples:
        for o in objects:
            other = "square" if o["shape"] == "disc" else "disc"
            y, x = np.add(o["centre"], OFFSETS[other])
            total += 1
            if 0 <= y < 128 and 0 <= x < 128:
                seen = _colour_index(image[y, x][None])[0]
                decoyed += int(seen not in (-1, o["colour"]))
    assert total > 150 and decoyed / total > 0.5


def test_a_listed_decoy_is_a_marker_of_another_colour_at_the_other_offset(samples):
    # the generator's decoy boxes, read back from the pixels: every pixel of the box shows one
    # marker colour, not the object's, and the box is the object's moved by the other offset
    listed, total = 0, 0
    for image, _, objects in samples:
        for o in objects:
            total += 1
            if o["decoy"] is None:
                continue
            listed += 1
            y0, x0, y1, x1 = o["decoy"]
            seen = set(_colour_index(image[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3)).tolist())
            assert len(seen) == 1 and seen.pop() not in (-1, o["colour"])
            dy, dx = OFFSETS["square" if o["shape"] == "disc" else "disc"]
            cy, cx = o["centre"]
            assert (y0 + y1) // 2 == cy + dy and (x0 + x1) // 2 == cx + dx
    assert listed > total / 3


def test_discs_and_squares_use_the_same_markers_strip(samples):
    columns = {"disc": [], "square": []}
    for _, _, objects in samples:
        for o in objects:
            columns[o["shape"]].append(o["marker"][1])
    assert min(len(v) for v in columns.values()) > 50
    # the strips of left marker edges overlap almost completely
    assert abs(np.median(columns["disc"]) - np.median(columns["square"])) <= 4


def test_every_object_pixel_is_beyond_the_fcn_reach_from_its_marker(samples):
    for image, label, objects in samples:
        for o in objects:
            (cy, cx), r = o["centre"], o["radius"]
            y0, x0, y1, x1 = o["marker"]
            marker = np.argwhere(_colour_index(image[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3)).reshape(y1 - y0 + 1, -1) >= 0)
            marker += (y0, x0)
            pixels = np.argwhere(label > 0)
            mine = pixels[(np.abs(pixels[:, 0] - cy) <= r) & (np.abs(pixels[:, 1] - cx) <= r)]
            chebyshev = np.abs(mine[:, None, :] - marker[None, :, :]).max(axis=2)
            assert chebyshev.min() > 74  # the lite FCN reaches 74 px (book chapter 2, data/README.md)


def test_objects_look_the_same_in_every_class(samples):
    fills = {}
    for image, label, _ in samples:
        pixels = image[label > 0]
        assert (pixels.max(axis=1) == pixels.min(axis=1)).all()  # grey
        grey = pixels[:, 0].astype(float)
        fills.setdefault(int(label[label > 0][0]), [])
        for k in (1, 2, 3):
            fills.setdefault(k, []).extend(image[label == k][:, 0][image[label == k][:, 0] != 40].astype(float))
    for values in fills.values():
        assert abs(np.mean(values) - 205) < 1 and 4 < np.std(values) < 8


def test_classes_are_balanced(samples):
    counts = np.bincount([o["colour"] for _, _, objects in samples for o in objects], minlength=3)
    assert counts.min() > 0.25 * counts.sum()


def test_too_small_an_image_is_refused():
    with pytest.raises(ValueError, match="size must be at least 117 px"):
        MarkerDataset("val", length=1, size=100)
