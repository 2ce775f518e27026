"""The dense route: the softmaxed [HW, HW] attention matrix itself.

PSANet (Zhao et al. 2018, Sec. 3.3) normalises the matrix PSAMask builds column by
column: entry (t, s) becomes the weight of position t in the output at position s.

    Y = psa_mask(A, mode)        # [N, HW, H, W], read as [N, HW, HW]
    P = softmax(Y, dim=1)        # each column sums to 1

softmax 'reference' runs over the whole zero-filled column, as every published PSANet
does, so rows the mask does not reach still take an exp(0) share; 'window' runs over
the written rows only; None keeps Y as it is.

compact (mmsegmentation's `compact=True`): the attention map predicts one channel per
absolute position (H*W channels) instead of one per window cell. Channel t at position
s is the weight of t in the output at s, so collect uses it as it is; distribute
predicts at the sending position and is transposed.

psa_aggregate multiplies the features by P (its 'dense' backend) or computes the
product without P (its fused backends); attention maps shown to a reader are P.
"""

import torch

from psanet_lite.ops.psa_mask import MODES, psa_mask

SOFTMAX_MODES = ("reference", "window", None)


def check_softmax(softmax):
    """Raise ValueError unless `softmax` is 'reference', 'window' or None.

    >>> check_softmax("window")
    """
    if softmax not in SOFTMAX_MODES:
        raise ValueError(f"softmax must be one of {SOFTMAX_MODES}, got {softmax!r}")


def _compact_scores(attention, mode):
    """[N, HW, H, W] compact map -> [N, HW, H, W] scores (transposed for distribute)."""
    n, channels, height, width = attention.shape
    hw = height * width
    if channels != hw:
        raise ValueError(
            f"compact attention must have one channel per position, H*W = {height}*{width} = {hw}; "
            f"got {channels} (shape {tuple(attention.shape)})"
        )
    if mode == "collect":
        return attention
    return attention.reshape(n, hw, hw).transpose(1, 2).reshape(n, hw, height, width)


def psa_attention(attention, mode, mask_size=None, softmax="reference", compact=False, backend=None):
    """The attention matrix of one direction: psa_mask, then a softmax over each column.

    Args:
        attention: [N, mh*mw, H, W] over-completed map ([N, H*W, H, W] when compact).
        mode: 'collect' or 'distribute'.
        mask_size: None for (2H-1, 2W-1), an int, or (mh, mw); unused when compact.
        softmax: 'reference' (the whole zero-filled column), 'window' (the written
            cells only) or None (no softmax).
        compact: channels index absolute positions instead of window cells.
        backend: psa_mask's backend (None: the fastest, see ops/backends.py).

    Returns:
        [N, H*W, H, W]: as an [N, HW, HW] matrix, entry (t, s) is the weight of
        position t in the output at position s.

    Example:
        >>> p = psa_attention(torch.randn(2, 5 * 5, 3, 4), "collect", 5)
        >>> p.shape, torch.allclose(p.sum(1), torch.ones(2, 3, 4))
        (torch.Size([2, 12, 3, 4]), True)
    """
    check_softmax(softmax)
    if compact:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        scores = _compact_scores(attention, mode)  # every cell written: 'window' = 'reference'
    else:
        scores = psa_mask(attention, mode, mask_size, backend=backend)  # [N, HW, H, W]
        if softmax == "window":
            # The cells psa_mask writes are exactly those a mask of ones marks with 1.
            written = psa_mask(torch.ones_like(attention[:1]), mode, mask_size, backend=backend)
            scores = scores.masked_fill(written == 0, float("-inf"))
    return scores if softmax is None else torch.softmax(scores, dim=1)
