"""A procedural dataset in which only long-range context decides the label.

Every image shows a few identical grey objects on a textured grey background
and a coloured cue band along one side. The cue's colour is the class of every
object in the image:

    cue red -> objects are class 1, green -> class 2, blue -> class 3;
    background (and the cue band itself) is class 0.

So a patch around an object says "object" but never which one, and the answer
lies across the image: the objects sit in the band along the opposite side,
every object pixel more than ``min_distance`` pixels from every cue pixel.
With the defaults (128 px images, 16 px cue band, distance > 76 px) the cue is
outside the receptive field of the lite backbone plus an FCN head, which
reaches at most 74 px from the pixel it labels: such a network can do no
better than guess the class per image, while an attention head that reaches
across the whole map can read it. See data/README.md.

Samples are a pure function of (seed, split, index): nothing is stored, any
item can be regenerated, and two runs with the same seed see the same data.
"""
import numpy as np

from psanet_lite.data.generated import GeneratedDataset

CUE_COLOURS = ((220, 40, 40), (40, 190, 60), (50, 90, 230))  # red, green, blue
CLASSES = ("background", "object, red cue", "object, green cue", "object, blue cue")
PALETTE = np.array([(0, 0, 0), (200, 60, 60), (60, 180, 80), (70, 110, 220)], dtype=np.uint8)
RADIUS = (6, 14)  # object radius range in pixels


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth grey texture [size, size] float: a coarse random grid, bilinearly
    enlarged, plus pixel noise."""
    grid = rng.uniform(60, 150, size=(5, 5))
    t = np.linspace(0, 4, size)
    i = np.minimum(t.astype(int), 3)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]  # [size, 5]
    smooth = rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]  # [size, size]
    return smooth + rng.normal(0, 8, size=(size, size))


def _object_mask(rng: np.random.Generator, size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    """A disc or a square (by a coin) of the given radius, as a bool [size, size] mask."""
    return shape_mask(size, cy, cx, radius, disc=rng.random() < 0.5)


def shape_mask(size: int, cy: float, cx: float, radius: float, disc: bool) -> np.ndarray:
    """A disc of the given radius, or a square of that half side, as a bool [size, size] mask."""
    yy, xx = np.mgrid[0:size, 0:size]
    if disc:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)


def make_context_sample(rng: np.random.Generator, size: int = 128, cue_size: int = 16,
                        min_distance: int = 76, max_objects: int = 6):
    """Draw one image and its label.

    Args:
        rng: numpy Generator (the only source of randomness).
        size: image side in pixels.
        cue_size: width of the coloured cue band along one side.
        min_distance: every object pixel is more than this many pixels from
            every cue pixel (across the band, hence also in Chebyshev distance).
        max_objects: objects per image are drawn from 2..max_objects.

    Returns:
        image uint8 [size, size, 3], label int64 [size, size] with values in
        0..len(CUE_COLOURS).

    Example:
        >>> image, label = make_context_sample(np.random.default_rng(0))
        >>> image.shape, sorted(np.unique(label).tolist())[:1]
        ((128, 128, 3), [0])
    """
    far = cue_size + min_distance  # first row objects may use (cue band at the top)
    if far + 2 * RADIUS[1] + 1 > size:
        raise ValueError(
            f"size {size} leaves no room for objects more than {min_distance} px from a "
            f"{cue_size} px cue band: need size >= cue_size + min_distance + {2 * RADIUS[1] + 1} "
            f"= {far + 2 * RADIUS[1] + 1}"
        )
    kind = int(rng.integers(len(CUE_COLOURS)))
    grey = _background(rng, size)
    objects = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(2, max_objects + 1))):
        radius = float(rng.uniform(*RADIUS))
        cy = rng.uniform(far + radius, size - 1 - radius)  # the whole shape in rows far..size-1
        cx = rng.uniform(radius, size - 1 - radius)
        shape = _object_mask(rng, size, cy, cx, radius)
        edge = shape & ~_eroded(shape)
        grey[shape] = 205 + rng.normal(0, 6, size=int(shape.sum()))
        grey[edge] = 40
        objects |= shape
    image = np.repeat(np.clip(grey, 0, 255)[:, :, None], 3, axis=2)
    image[:cue_size] = np.array(CUE_COLOURS[kind]) + rng.normal(0, 6, size=(cue_size, size, 3))
    label = np.where(objects, kind + 1, 0).astype(np.int64)
    # Drawn with the cue band at the top; a random rotation puts it on any side.
    turns = int(rng.integers(4))
    image = np.rot90(np.clip(image, 0, 255), turns).astype(np.uint8)
    return image, np.rot90(label, turns).copy()


def _eroded(shape: np.ndarray) -> np.ndarray:
    """The mask eroded by one pixel (4-neighbourhood), to draw a dark outline."""
    inner = shape.copy()
    inner[1:] &= shape[:-1]
    inner[:-1] &= shape[1:]
    inner[:, 1:] &= shape[:, :-1]
    inner[:, :-1] &= shape[:, 1:]
    return inner


class ContextDataset(GeneratedDataset):
    """The context dataset: ``length`` generated (image, mask) pairs.

    Args:
        split: 'train', 'val' or 'test'; each split draws from its own stream.
        length: number of images.
        size: image side in pixels (>= cue_size + min_distance + 29).
        seed: base seed; sample i of a split is drawn from
            numpy's default_rng((seed, split, i)).
        transforms: paired transform applied to (image, mask), or None.
        cue_size, min_distance, max_objects: see make_context_sample.

    Items: image tv_tensors.Image uint8 [3, size, size], mask tv_tensors.Mask
    int64 [size, size] (before transforms).

    Example:
        >>> data = ContextDataset("val", length=4)
        >>> image, mask = data[0]
        >>> image.shape, data.num_classes
        (torch.Size([3, 128, 128]), 4)
    """

    name = "context"
    classes = CLASSES
    palette = PALETTE

    def __init__(self, split: str = "train", length: int = 2000, size: int = 128, seed: int = 0,
                 transforms=None, cue_size: int = 16, min_distance: int = 76, max_objects: int = 6):
        self.options = {"size": size, "cue_size": cue_size, "min_distance": min_distance,
                        "max_objects": max_objects}
        super().__init__(split, length, size, seed, transforms)

    def _draw(self, rng: np.random.Generator):
        return make_context_sample(rng, **self.options)
