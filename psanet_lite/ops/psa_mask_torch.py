"""PSAMask in vectorized torch: one precomputed index map, used forward and backward.

Every valid (mask cell, position) pair moves one number from the over-completed map
A (flattened per sample to mh*mw*H*W entries) to the attention matrix Y (H*W*H*W
entries). The pairs depend only on (H, W, mh, mw, mode), so they are computed once
per device and cached (the last few shapes are kept).

Forward copies A[source] to Y[target] with the pairs in Y's order, so Y is written
sequentially; when the mask covers the whole map (mh >= 2H-1 and mw >= 2W-1) target
is all of Y in order and the forward is a single gather with no zero fill. Backward
copies dY[target] back to dA[source] with the same pairs in A's order, so dA is
written sequentially (cells that fall outside the map keep gradient 0).
"""

import functools
from typing import NamedTuple, Optional

import torch

_CACHE_ENTRIES = 4  # collect + distribute at two map sizes


class PSAMaskIndices(NamedTuple):
    """The index map of one shape and mode, int64 flat indices within one sample.

    forward_source: [K] into A [mh*mw*H*W], ordered by forward_target.
    forward_target: [K] into Y [H*W*H*W], increasing; None when K == (H*W)**2
        (the mask covers the map: every entry of Y is written, in order).
    backward_source, backward_target: the same K pairs ordered by source (increasing).
    """

    forward_source: torch.Tensor
    forward_target: Optional[torch.Tensor]
    backward_source: torch.Tensor
    backward_target: torch.Tensor

    def nbytes(self):
        return sum(index.numel() * index.element_size() for index in self if index is not None)


@functools.lru_cache(maxsize=_CACHE_ENTRIES)
def psa_mask_indices(height, width, mh, mw, mode, device):
    """Return the PSAMaskIndices of one shape and mode on `device` (cached).

    >>> indices = psa_mask_indices(2, 2, 3, 3, "collect", torch.device("cpu"))
    >>> indices.forward_target is None, indices.forward_source.numel()
    (True, 16)
    """
    hw = height * width
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    # Built on the CPU and moved, so that the map also serves tensors on the meta device
    # (shape-only FLOP counting) and torch.compile sees no data-dependent branch.
    cpu = torch.device("cpu")
    # Enumerate outputs (p, q) of the collect matrix Y[p, q] = A[(ph-qh+hh)*mw + (pw-qw+hw), q]
    # and keep those whose mask cell lies inside the mask.
    p = torch.arange(hw, device=cpu)
    ph, pw = (p // width)[:, None], (p % width)[:, None]  # [HW, 1]
    qh, qw = (p // width)[None, :], (p % width)[None, :]  # [1, HW]
    i = ph - qh + half_h  # [HW, HW] mask row for (p, q)
    j = pw - qw + half_w  # [HW, HW] mask column
    inside = (i >= 0) & (i < mh) & (j >= 0) & (j < mw)
    source = (i * mw + j) * hw + qh * width + qw  # [HW, HW]
    if mode == "distribute":
        # distribute is collect transposed: Y_d[q, p] = Y_c[p, q].
        source, inside = source.t(), inside.t()
    source, inside = source.reshape(-1), inside.reshape(-1)  # [HW*HW]
    target = torch.arange(hw * hw, device=cpu)
    covers_all = bool(inside.all())
    if not covers_all:
        source, target = source[inside], target[inside]  # [K]
    by_source = torch.argsort(source)
    return PSAMaskIndices(
        forward_source=source.contiguous().to(device),
        forward_target=None if covers_all else target.to(device),
        backward_source=source[by_source].to(device),
        backward_target=target[by_source].to(device),
    )


class _PSAMaskTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mode, mh, mw):
        n, channels, height, width = x.shape
        indices = psa_mask_indices(height, width, mh, mw, mode, x.device)
        x_flat = x.reshape(n, channels * height * width)  # [N, mh*mw*HW]
        if indices.forward_target is None:
            y = x_flat.index_select(1, indices.forward_source)  # [N, HW*HW]
        else:
            y = x_flat.new_zeros(n, (height * width) ** 2)  # [N, HW*HW]
            y.index_copy_(1, indices.forward_target, x_flat.index_select(1, indices.forward_source))
        ctx.shape = x.shape
        ctx.indices = indices
        return y.view(n, height * width, height, width)

    @staticmethod
    def backward(ctx, grad_y):
        n, channels, height, width = ctx.shape
        indices = ctx.indices
        grad_flat = grad_y.reshape(n, -1)  # [N, HW*HW]
        grad_x = grad_flat.new_zeros(n, channels * height * width)  # [N, mh*mw*HW]
        grad_x.index_copy_(1, indices.backward_source, grad_flat.index_select(1, indices.backward_target))
        return grad_x.view(ctx.shape), None, None, None


def psa_mask_torch(x, mode, mh, mw):
    """Vectorized PSAMask. x: [N, mh*mw, H, W] (validated by the caller) -> [N, H*W, H, W].

    >>> psa_mask_torch(torch.randn(1, 9, 2, 2), "distribute", 3, 3).shape
    torch.Size([1, 4, 2, 2])
    """
    return _PSAMaskTorch.apply(x, mode, mh, mw)
