"""A procedural dataset in which an object's label lies at a place the object itself selects.

Every 128 px image shows grey objects, discs and squares drawn the same way whatever
their class, stacked along its left side on a textured grey background, and coloured
square markers along its right side. An object takes the colour of one marker, at an
offset that its own shape selects:

    a disc takes the colour of the marker OFFSETS["disc"] = (0, 96) px away (straight right),
    a square the colour of the marker OFFSETS["square"] = (48, 96) px away (right and down);
    class 1 = red, 2 = green, 3 = blue; background and markers are class 0.

An object's deciding marker is the object's own box moved by its offset and grown by
MARGIN px on each side, so every object pixel finds it at exactly that offset. Most
objects also find a marker of another colour at the *other* shape's offset (a decoy, or
another object's marker), and the markers of discs and squares lie in the same strip:
neither a marker's place nor the colours in the image tell an object's class, only the
marker at the offset its shape selects. A marker cannot know which of the two offsets
leads to it, so sending its colour back along one offset (PSA's distribute) can serve one
shape at most; the objects of the other shape must look (collect). Every object pixel is more than MIN_DISTANCE px
(Chebyshev) from every pixel of its deciding marker: farther than the lite backbone
with an FCN head sees (74 px, measured in book chapter 2 and data/README.md).

Samples are a pure function of (seed, split, index): nothing is stored, any item can be
regenerated, and two runs with the same seed see the same data.
"""
import numpy as np

from psanet_lite.data.context import _background, _eroded, shape_mask
from psanet_lite.data.generated import GeneratedDataset

MARKER_COLOURS = ((220, 40, 40), (40, 190, 60), (50, 90, 230))  # red, green, blue
CLASSES = ("background", "object, red marker", "object, green marker", "object, blue marker")
PALETTE = np.array([(0, 0, 0), (200, 60, 60), (60, 180, 80), (70, 110, 220)], dtype=np.uint8)
OFFSETS = {"disc": (0, 96), "square": (48, 96)}  # (dy, dx) from an object to its deciding marker
RADIUS = (5, 8)  # object radius (half side for squares), px, both ends included
MARGIN = 2  # a marker is its object's box moved by the offset and grown by MARGIN px per side
GAP = 3  # px kept free between any two things drawn
DECOY_CHANCE = 0.8  # chance of a decoy at an object's other offset, where it is free
MIN_DISTANCE = OFFSETS["disc"][1] - 2 * RADIUS[1] - MARGIN - 1  # 77 px: object pixel to its marker's nearest pixel


def _free(boxes: list, box: tuple, size: int) -> bool:
    """True when `box` (y0, x0, y1, x1, inclusive) lies in the image and keeps GAP px from every box."""
    y0, x0, y1, x1 = box
    if y0 < 0 or x0 < 0 or y1 >= size or x1 >= size:
        return False
    return all(y0 > b[2] + GAP or y1 < b[0] - GAP or x0 > b[3] + GAP or x1 < b[1] - GAP for b in boxes)


def _moved(box: tuple, offset: tuple, grow: int) -> tuple:
    y0, x0, y1, x1 = box
    dy, dx = offset
    return (y0 + dy - grow, x0 + dx - grow, y1 + dy + grow, x1 + dx + grow)


def _layout(rng: np.random.Generator, size: int):
    """Objects down the left side, each with its deciding marker, and decoys at the
    other shape's offset: (objects, [(marker box, colour index)])."""
    boxes, objects, markers = [], [], []
    y = int(rng.integers(0, 8))
    while y < size:
        shape = ("disc", "square")[int(rng.integers(2))]
        radius = int(rng.integers(RADIUS[0], RADIUS[1] + 1))
        cy, cx = y + radius, int(rng.integers(radius, size - OFFSETS[shape][1] - radius - MARGIN))
        box = (cy - radius, cx - radius, cy + radius, cx + radius)
        marker = _moved(box, OFFSETS[shape], MARGIN)
        if not (_free(boxes, box, size) and _free(boxes + [box], marker, size)):
            y += 2
            continue
        colour = int(rng.integers(len(MARKER_COLOURS)))
        boxes += [box, marker]
        markers.append((marker, colour))
        # a decoy where the other shape would look, in another colour
        decoy = _moved(box, OFFSETS["square" if shape == "disc" else "disc"], MARGIN)
        if rng.random() < DECOY_CHANCE and _free(boxes, decoy, size):
            boxes.append(decoy)
            markers.append((decoy, (colour + int(rng.integers(1, len(MARKER_COLOURS)))) % len(MARKER_COLOURS)))
        else:
            decoy = None
        objects.append({"shape": shape, "centre": (cy, cx), "radius": radius, "marker": marker, "colour": colour,
                        "decoy": decoy})
        y = box[2] + GAP + 1 + int(rng.integers(0, 6))
    return objects, markers


def make_marker_sample(rng: np.random.Generator, size: int = 128):
    """Draw one image, its label and its objects.

    Returns:
        image uint8 [size, size, 3], label int64 [size, size] with values in
        0..len(MARKER_COLOURS), and the objects: dicts of shape, centre (y, x), radius,
        marker box (y0, x0, y1, x1, inclusive), colour index and decoy box (the marker
        of another colour at the other shape's offset, or None where none was drawn).

    Example:
        >>> image, label, objects = make_marker_sample(np.random.default_rng(0))
        >>> image.shape, label.dtype, len(objects) > 0
        ((128, 128, 3), dtype('int64'), True)
    """
    need = max(dx for _, dx in OFFSETS.values()) + 2 * (RADIUS[1] + MARGIN) + 1
    if size < need:
        raise ValueError(f"size must be at least {need} px (an object and its marker side by side), got {size}")
    grey = _background(rng, size)
    image = np.repeat(grey[:, :, None], 3, axis=2)
    label = np.zeros((size, size), dtype=np.int64)
    objects, markers = _layout(rng, size)
    for (y0, x0, y1, x1), colour in markers:
        patch = image[y0:y1 + 1, x0:x1 + 1]
        patch[:] = np.array(MARKER_COLOURS[colour]) + rng.normal(0, 6, size=patch.shape)
    for o in objects:
        inside = shape_mask(size, *o["centre"], o["radius"], disc=o["shape"] == "disc")
        edge = inside & ~_eroded(inside)
        image[inside] = (205 + rng.normal(0, 6, size=int(inside.sum())))[:, None]
        image[edge] = 40
        label[inside] = o["colour"] + 1
    return np.clip(image, 0, 255).astype(np.uint8), label, objects


class MarkerDataset(GeneratedDataset):
    """The marker dataset: ``length`` generated (image, mask) pairs.

    Args:
        split: 'train', 'val' or 'test'; each split draws from its own stream.
        length: number of images.
        size: image side in pixels (at least 117).
        seed: base seed; sample i of a split is drawn from numpy's default_rng((seed, split, i)).
        transforms: paired transform applied to (image, mask), or None.

    Items: image tv_tensors.Image uint8 [3, size, size], mask tv_tensors.Mask int64
    [size, size] (before transforms). ``objects(i)`` lists sample i's objects.

    Example:
        >>> data = MarkerDataset("val", length=4)
        >>> data[0][1].unique().tolist()  # background and the classes of its objects
        [0, 1, 2]
        >>> sorted(data.objects(0)[0])
        ['centre', 'colour', 'decoy', 'marker', 'radius', 'shape']
    """

    name = "markers"
    classes = CLASSES
    palette = PALETTE

    def _draw(self, rng: np.random.Generator):
        return make_marker_sample(rng, self.size)[:2]

    def objects(self, index: int) -> list:
        """Sample `index`'s objects: dicts of shape, centre (y, x), radius, marker box, colour, decoy box or None."""
        return make_marker_sample(self._rng(index), self.size)[2]
