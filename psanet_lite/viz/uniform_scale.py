"""Attention weights on a scale relative to uniform attention, shared by every mask.

A mask spreads weight 1 over P positions; uniform attention gives each position 1/P. A
weight w is drawn by log2(w * P), clipped to [-log_range, +log_range]: 0 is the uniform
share, +4 sixteen times it, -4 a sixteenth. The same colours then mean the same thing
for every pixel, branch, image and map size, unlike a mask scaled to its own maximum.
The interactive AttentionFigure (scale="uniform") and the static plot_attention_mask
use this one scale, colormap and legend.

    log2(w * P)  -4     -2    0    2    4
    legend       1/16x  1/4x  1x   4x   16x
"""

import math
import numbers

import numpy as np

CMAP = "RdBu_r"          # diverging: blue below uniform, white at uniform, red above
DEFAULT_LOG_RANGE = 4.0  # 1/16x .. 16x
CAPTION = "weight relative to uniform attention"


def check_log_range(log_range):
    """log_range as a float; ValueError unless it is a finite number > 0.

    >>> check_log_range(3)
    3.0
    """
    number = isinstance(log_range, numbers.Real) and not isinstance(log_range, bool)
    if not (number and math.isfinite(log_range) and log_range > 0):
        raise ValueError(f"log_range must be a number > 0 (4 draws 1/16x .. 16x uniform), got {log_range!r}")
    return float(log_range)


def relative_log2(masks, log_range=DEFAULT_LOG_RANGE):
    """log2(weight * P), clipped to [-log_range, log_range]: [..., P] weights -> [..., P] float64.

    P is the last dimension (the positions of one mask); a weight of 0 gets -log_range.

    >>> relative_log2(np.array([0.25, 0.5, 0.25, 0.0]), 4).tolist()
    [0.0, 1.0, 0.0, -4.0]
    """
    masks = np.asarray(masks, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logs = np.log2(masks * masks.shape[-1])
    return np.clip(logs, -log_range, log_range)


def relative_codes(masks, log_range=DEFAULT_LOG_RANGE):
    """8-bit codes of relative_log2 over the fixed range: [..., P] weights -> uint8 [..., P].

    Code 0 is -log_range, 255 is +log_range, the same for every mask (colour = lut[code]).

    >>> relative_codes(np.array([1 / 64, 0.25, 4.0, 0.0]), 4).tolist()
    [0, 128, 255, 0]
    """
    logs = relative_log2(masks, log_range)
    return np.round((logs + log_range) / (2 * log_range) * 255).astype(np.uint8)


def weights_of_codes(codes, log_range=DEFAULT_LOG_RANGE):
    """Inverse of relative_codes (within 8 bits and the clipping): uint8 [..., P] -> weights [..., P].

    >>> weights_of_codes(np.array([0, 255], np.uint8), 4).tolist()
    [0.03125, 8.0]
    """
    codes = np.asarray(codes, dtype=np.float64)
    return 2.0 ** (codes / 255 * 2 * log_range - log_range) / codes.shape[-1]


def ratio_label(log2_ratio):
    """The text of a power of two as a multiple of uniform: 2 -> '4×', -3 -> '1/8×', 0.5 -> '1.41×'.

    >>> [ratio_label(k) for k in (-4, 0, 2)]
    ['1/16×', '1×', '4×']
    """
    ratio = 2.0 ** log2_ratio
    if float(log2_ratio).is_integer():
        return f"{ratio:.0f}×" if log2_ratio >= 0 else f"1/{1 / ratio:.0f}×"
    return f"{ratio:.3g}×"


def share_text(share):
    """A share of uniform as the readouts write it: one decimal from 1 up, two significant
    digits below (static/attention.js writes the same).

    >>> share_text(23.14), share_text(0.2449), share_text(0.1)
    ('23.1×', '0.24×', '0.10×')
    """
    return f"{share:.1f}×" if share >= 1 else f"{share:#.2g}×"


def legend_ticks(log_range=DEFAULT_LOG_RANGE):
    """Ticks of the legend: [(place along the bar in 0..1, label)], both ends and whole powers of
    two between them, at most five; the ends say that values beyond them are clipped.

    >>> [label for _, label in legend_ticks(4)]
    ['≤1/16×', '1/4×', '1×', '4×', '≥16×']
    >>> legend_ticks(1)[0]
    (0.0, '≤1/2×')
    """
    step = max(1, math.ceil(log_range / 2))
    inner = range(-(math.floor(log_range) // step) * step, math.floor(log_range) + 1, step)
    ticks = {-log_range: "≤" + ratio_label(-log_range), log_range: "≥" + ratio_label(log_range)}
    for k in inner:
        if abs(k) < log_range:
            ticks[k] = ratio_label(k)
    return [((value + log_range) / (2 * log_range), label) for value, label in sorted(ticks.items())]
