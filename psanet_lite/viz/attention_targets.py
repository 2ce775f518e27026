"""What the attention figure outlines and measures: regions of an image, each with a target box.

A target is a dict {"pixels": where the reader clicks, "box": what to measure, "label"}:

- pixels: a bool [H, W] array over the image, or a box (y0, x0, y1, x1), inclusive pixels;
- box: the target box (y0, x0, y1, x1), inclusive pixels, e.g. an object's deciding marker;
- label: what the box is, for the readout ("deciding marker").

On a map of stride s (image H x W, map H/s x W/s) each cell belongs to the region that
covers most of its pixels (none when no region touches it). For every cell of a region
and every branch, the figure embeds the share of that cell's mask on the box's cells
(engine.attention_shares: box_cells and uniform_share, 1 = uniform), computed here from
the float weights. On the marker data set an object's centre cell always belongs to the
object, so the figure's share there is the one marker_attention_shares measures.
"""

import numpy as np
import torch

from psanet_lite.data.context import shape_mask
from psanet_lite.engine.attention_shares import box_cells, uniform_share


def marker_targets(objects, size):
    """The targets of a marker-data image: each object's pixels lead to its deciding marker.

    Args:
        objects: ``MarkerDataset.objects(i)`` (dicts with shape, centre, radius, marker).
        size: the image side in pixels (``dataset.size``).

    Example:
        >>> from psanet_lite.data import MarkerDataset
        >>> val = MarkerDataset("val", length=1)
        >>> targets = marker_targets(val.objects(0), val.size)
        >>> targets[0]["label"], targets[0]["pixels"].shape, targets[0]["box"] == val.objects(0)[0]["marker"]
        ('deciding marker', (128, 128), True)
    """
    return [
        {"pixels": shape_mask(size, *o["centre"], o["radius"], disc=o["shape"] == "disc"),
         "box": tuple(o["marker"]), "label": "deciding marker"}
        for o in objects
    ]


def _check_box(box, height, width, name):
    """A box (y0, x0, y1, x1) of whole pixels inside a height x width image -> tuple of ints."""
    try:
        y0, x0, y1, x1 = (int(v) for v in box)
        whole = all(float(v) == int(v) for v in box)
    except (TypeError, ValueError):
        whole = False
    if not whole or not (0 <= y0 <= y1 < height and 0 <= x0 <= x1 < width):
        raise ValueError(f"{name} must be a box (y0, x0, y1, x1) of whole pixels inside the {height}x{width} "
                         f"image, got {box!r}")
    return y0, x0, y1, x1


def _region_pixels(pixels, height, width, name):
    """A region given as a bool [H, W] array or a box -> bool [H, W]."""
    array = np.asarray(pixels)
    if array.dtype == bool:
        if array.shape != (height, width):
            raise ValueError(f"{name} must be a bool [{height}, {width}] array (the image's pixels) or a box, "
                             f"got a bool array of shape {array.shape}")
        return array
    y0, x0, y1, x1 = _check_box(pixels, height, width, name)
    region = np.zeros((height, width), dtype=bool)
    region[y0:y1 + 1, x0:x1 + 1] = True
    return region


def check_targets(targets, count):
    """targets as one list (maybe empty) per image; ValueError on any other form."""
    if targets is None:
        return [[] for _ in range(count)]
    if not isinstance(targets, (list, tuple)) or len(targets) != count:
        given = f"{len(targets)} entries" if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets must hold one list of target dicts (or None) per image: {count} image(s), "
                         f"got {given}")
    out = []
    for k, image_targets in enumerate(targets):
        image_targets = [] if image_targets is None else image_targets
        if not isinstance(image_targets, (list, tuple)) or not all(isinstance(t, dict) for t in image_targets):
            raise ValueError(f"targets[{k}] must be a list of dicts with 'pixels', 'box' and 'label', "
                             f"got {type(image_targets).__name__}")
        for i, target in enumerate(image_targets):
            unknown = set(target) - {"pixels", "box", "label"}
            if unknown or not {"pixels", "box"} <= set(target):
                raise ValueError(f"targets[{k}][{i}] must have the keys 'pixels', 'box' and optionally 'label', "
                                 f"got {sorted(target)}")
        out.append(list(image_targets))
    return out


def embed_targets(targets, masks, image_shape, map_shape, name):
    """The targets of one image as the figure embeds them.

    Args:
        targets: the image's list of target dicts (see the module docstring).
        masks: {branch: float [P, P]}: row s is the mask of cell s (P = h*w cells).
        image_shape: (H, W) of the image in pixels; map_shape: (h, w) of the map.
        name: how errors name this image's targets ("targets[2]").

    Returns (region of each cell: int [P], -1 for none; [{"label", "box", "cells": [s, ...],
    "shares": {branch: [share of cell s's mask on the box, ...]}}]), one entry per target.
    """
    (height, width), (map_height, map_width) = image_shape, map_shape
    if not targets:
        return np.full(map_height * map_width, -1), []
    stride = height // map_height
    if stride * map_height != height or stride * map_width != width:
        raise ValueError(f"{name} needs an image of whole cells of one stride: the image is {height}x{width}, "
                         f"the map {map_height}x{map_width}")
    covered = np.stack([  # (regions, h, w): pixels of each region in each cell
        _region_pixels(t["pixels"], height, width, f"{name}[{i}]['pixels']")
        .reshape(map_height, stride, map_width, stride).sum(axis=(1, 3))
        for i, t in enumerate(targets)
    ])
    region = np.where(covered.max(axis=0) > 0, covered.argmax(axis=0), -1).reshape(-1)  # (h*w,)
    entries = []
    for i, target in enumerate(targets):
        box = _check_box(target["box"], height, width, f"{name}[{i}]['box']")
        box_mask = box_cells(box, stride, (map_height, map_width))
        cells = np.flatnonzero(region == i)
        shares = {branch: uniform_share(torch.from_numpy(rows[cells]).double(), box_mask).tolist()
                  for branch, rows in masks.items()}
        entries.append({"label": str(target.get("label", "target")), "box": list(box),
                        "cells": cells.tolist(), "shares": shares})
    return region, entries
