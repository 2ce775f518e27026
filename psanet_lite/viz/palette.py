"""Colours for figures: colormap look-up tables, label colouring and overlays
(the datasets' palettes are made in psanet_lite/data/labels.py).

Everything here works on numpy arrays and returns uint8 RGB, so the same colours
serve matplotlib figures, saved PNGs and the interactive HTML figures (which embed
the look-up table and colour pixels in the browser).
"""

import numpy as np

from psanet_lite.data.labels import IGNORE_INDEX  # palettes belong with the data (data/labels.py)


def colormap_lut(name="inferno"):
    """The 256 RGB colours of a matplotlib colormap, as a [256, 3] uint8 table.

    Value v in [0, 1] is drawn with lut[round(255 * v)].

    >>> colormap_lut("gray")[[0, 255]].tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {name!r}") from None
    rgba = cmap(np.linspace(0.0, 1.0, 256))  # (256, 4) floats in [0, 1]
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def colorize_labels(labels, palette, ignore_index=IGNORE_INDEX, ignore_color=(255, 255, 255)):
    """Paint an integer label map: [H, W] ints -> [H, W, 3] uint8.

    Pixels equal to ignore_index get ignore_color; any other label must index palette.

    >>> from psanet_lite.data.labels import label_palette
    >>> colorize_labels(np.array([[0, 1], [255, 1]]), label_palette(2))[:, :, 0].tolist()
    [[0, 128], [255, 128]]
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array [H, W], got {labels.dtype} {labels.shape}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be [num_classes, 3], got shape {palette.shape}")
    ignored = labels == ignore_index
    valid = labels[~ignored]
    if valid.size and (valid.min() < 0 or valid.max() >= len(palette)):
        raise ValueError(
            f"labels must lie in 0..{len(palette) - 1} (or be {ignore_index}), "
            f"got values from {valid.min()} to {valid.max()}"
        )
    out = palette[np.where(ignored, 0, labels)]  # (H, W, 3)
    out[ignored] = ignore_color
    return out


def heatmap(values, cmap="inferno"):
    """Colour a 2-D array by a colormap after scaling it to [0, 1]: [H, W] -> [H, W, 3] uint8.

    A constant array is drawn with the colormap's lowest colour.

    >>> heatmap(np.array([[0.0, 2.0]]), "gray")[0, :, 0].tolist()
    [0, 255]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D [H, W], got shape {values.shape}")
    low, high = values.min(), values.max()
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return colormap_lut(cmap)[np.round(scaled * 255).astype(np.intp)]


def overlay(image, colors, alpha=0.5):
    """Blend colors over image: both [H, W, 3] uint8 -> [H, W, 3] uint8.

    alpha is the weight of colors: a float, or an [H, W] array for per-pixel blending.

    >>> overlay(np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 200, np.uint8), 0.25)[0, 0].tolist()
    [50, 50, 50]
    """
    image = np.asarray(image)
    colors = np.asarray(colors)
    if image.shape != colors.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image and colors must both be [H, W, 3], got {image.shape} and {colors.shape}"
        )
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim == 2:
        alpha = alpha[:, :, None]
    blended = image.astype(np.float64) * (1.0 - alpha) + colors.astype(np.float64) * alpha
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
