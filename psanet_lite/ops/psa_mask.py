"""PSAMask: turn the over-completed attention map into an [HW, HW] attention matrix.

PSANet (Zhao et al., ECCV 2018, Sec. 3.3) predicts, at every position (h, w) of the
feature map, a mask of mh*mw weights centred on (h, w): the "over-completed" map
A: [N, mh*mw, H, W]. PSAMask moves each weight to the place where it belongs in a
full position-to-position matrix Y: [N, H*W, H, W] (read as [N, HW, HW]):

    collect:    Y[n, t, s] = A[n, i*mw + j, h, w]   (position s = (h, w) collects from t)
    distribute: Y[n, s, t] = A[n, i*mw + j, h, w]   (position s distributes to t)

with s = h*W + w, t = (h+i-hh)*W + (w+j-hw), hh = (mh-1)//2, hw = (mw-1)//2, for every
mask cell (i, j) whose target t lies inside the map; every other entry of Y is 0.
This is exactly mmcv's PSAMask (even masks included: mask 4 covers offsets -1..2).

Three backends compute the same numbers: 'reference' (Python loops, the paper's text
in code), 'torch' (strided copies of the mask window, CPU and GPU) and 'cupy' (a CUDA kernel); ops/backends.py
says which runs by default and why.
"""

import operator

import torch
from torch import nn

from psanet_lite.ops import library, psa_mask_reference
from psanet_lite.ops.backends import PSA_MASK_BACKENDS, check_backend, choose_backend

MODES = ("collect", "distribute")


def resolve_mask_size(mask_size, height, width):
    """Return (mh, mw) from a mask_size given as None, an int or a pair.

    None means the over-completed mask (2H-1, 2W-1) that lets every position see
    the whole map. Raises TypeError/ValueError naming the accepted forms.

    >>> resolve_mask_size(None, 32, 64), resolve_mask_size(66, 32, 32)
    ((63, 127), (66, 66))
    """
    if mask_size is None:
        return 2 * height - 1, 2 * width - 1
    if isinstance(mask_size, (tuple, list)):
        if len(mask_size) != 2:
            raise ValueError(
                f"mask_size must be None, an int or a pair (mh, mw); got a sequence of "
                f"length {len(mask_size)}: {mask_size!r}"
            )
        sizes = tuple(mask_size)
    else:
        sizes = (mask_size, mask_size)
    resolved = []
    for size in sizes:
        if isinstance(size, bool):
            raise TypeError(f"mask_size must hold positive ints, got a bool in {mask_size!r}")
        try:
            size = operator.index(size)
        except TypeError:
            raise TypeError(
                f"mask_size must be None, an int or a pair (mh, mw) of ints; got {mask_size!r} "
                f"({type(mask_size).__name__})"
            ) from None
        if size < 1:
            raise ValueError(f"mask_size must be positive, got {mask_size!r}")
        resolved.append(size)
    return resolved[0], resolved[1]


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _check_input(x, mask_size):
    """Validate x and return (mh, mw)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [N, mh*mw, H, W], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"x must have 4 dimensions [N, mh*mw, H, W], got {x.dim()} with shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    _, channels, height, width = x.shape
    mh, mw = resolve_mask_size(mask_size, height, width)
    if channels != mh * mw:
        raise ValueError(
            f"x must have mh*mw = {mh}*{mw} = {mh * mw} channels for mask_size "
            f"{mask_size!r} on a {height}x{width} map, got {channels} (shape {tuple(x.shape)})"
        )
    return mh, mw


def psa_mask(x, mode, mask_size=None, backend=None):
    """Spread the over-completed attention map into the [HW, HW] attention matrix.

    Args:
        x: [N, mh*mw, H, W] floating-point tensor, the over-completed map.
        mode: 'collect' or 'distribute'.
        mask_size: None for (2H-1, 2W-1), an int for a square mask, or (mh, mw).
        backend: None ('torch', the fastest: see ops/backends.py), 'reference',
            'torch' or 'cupy'.

    Returns:
        [N, H*W, H, W] tensor; as an [N, HW, HW] matrix, row = channel index t
        (collect: the source position), column = position s = h*W + w.
        distribute's output is collect's transposed in the last two axes.

    Example:
        >>> a = torch.randn(2, 5 * 5, 3, 3)
        >>> psa_mask(a, "collect", 5).shape
        torch.Size([2, 9, 3, 3])
    """
    _check_mode(mode)
    mh, mw = _check_input(x, mask_size)
    name = choose_backend(x.device, backend, PSA_MASK_BACKENDS)
    if name == "reference":
        return psa_mask_reference.psa_mask_reference(x, mode, mh, mw)
    return library.psa_mask(x, mode, mh, mw, name)  # the operator psanet_lite::psa_mask


class PSAMask(nn.Module):
    """nn.Module form of :func:`psa_mask` with a fixed mode and mask size.

    Input [N, mh*mw, H, W] -> output [N, H*W, H, W].

    Example:
        >>> collect = PSAMask("collect", (5, 7))
        >>> collect(torch.randn(1, 35, 4, 6)).shape
        torch.Size([1, 24, 4, 6])
    """

    def __init__(self, mode, mask_size=None, backend=None):
        super().__init__()
        _check_mode(mode)
        if mask_size is not None:
            mask_size = resolve_mask_size(mask_size, 1, 1)
        check_backend(backend, PSA_MASK_BACKENDS)
        self.mode = mode
        self.mask_size = mask_size
        self.backend = backend

    def forward(self, x):
        return psa_mask(x, self.mode, self.mask_size, self.backend)

    def extra_repr(self):
        return f"mode={self.mode!r}, mask_size={self.mask_size}, backend={self.backend!r}"
