"""PSAMask in standard operators: a Gather (and a ScatterND) with a constant index table.

ONNX Runtime, TensorRT or onnxruntime-web implement no psanet_lite::psa_mask, and a graph
that names an operator its runtime lacks does not load (mmcv's PSAMask export fails this
way). But for a fixed map size H x W and mask mh x mw, PSAMask moves numbers between
fixed places: an index map (psa_mask_indices below), computed once. Written
into the graph as a constant, it turns the operator into

    flat   = x.reshape(N, mh*mw*H*W)
    values = Gather(flat, source, axis=1)                  # [N, K]
    y      = values                                        # mask covers the map: K = (HW)^2
           | ScatterND(zeros [N, (HW)^2], target, values)  # otherwise: K < (HW)^2

and the fused aggregation into its dense composition (the lowered PSAMask, a softmax,
a matrix product). The index tables grow as (HW)^2 int64: 0.5 MiB for the book's 16x16
map, 32 MiB for a Cityscapes 32x64 attention grid.

    >>> import torch
    >>> from psanet_lite.ops import psa_mask
    >>> x = torch.randn(1, 9, 3, 3)
    >>> torch.equal(lowered_psa_mask(x, "distribute", 3, 3), psa_mask(x, "distribute", 3))
    True
"""

import contextlib
import functools
from typing import NamedTuple, Optional

import torch

from psanet_lite.ops import library, psa_aggregate
from psanet_lite.ops.aggregate_logits import over_completed_map


class PSAMaskIndices(NamedTuple):
    """The index map of one shape and mode, int64 flat indices within one sample.

    forward_source: [K] into A [mh*mw*H*W], ordered by forward_target.
    forward_target: [K] into Y [H*W*H*W], increasing; None when K == (H*W)**2
        (the mask covers the map: every entry of Y is written, in order).
    """

    forward_source: torch.Tensor
    forward_target: Optional[torch.Tensor]


def psa_mask_indices(height, width, mh, mw, mode, device):
    """Return the PSAMaskIndices of one shape and mode on `device` (the closed form of
    psanet_lite.ops.psa_mask as a table: the graph stores it as a constant).

    >>> indices = psa_mask_indices(2, 2, 3, 3, "collect", torch.device("cpu"))
    >>> indices.forward_target is None, indices.forward_source.numel()
    (True, 16)
    """
    hw = height * width
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    cpu = torch.device("cpu")
    # Enumerate outputs (p, q) of the collect matrix Y[p, q] = A[(ph-qh+hh)*mw + (pw-qw+hw), q]
    # and keep those whose mask cell lies inside the mask.
    p = torch.arange(hw, device=cpu)  # built on the CPU and moved
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
    return PSAMaskIndices(
        forward_source=source.contiguous().to(device),
        forward_target=None if covers_all else target.to(device),
    )


def lowered_psa_mask(x, mode, mh, mw, backend="torch", tables=None):
    """PSAMask of x [N, mh*mw, H, W] -> [N, H*W, H, W] with index_select / index_put only.

    `tables`: an IndexTables (None: a fresh one). `backend` is ignored: the function
    stands in for the operator.
    """
    n, _, height, width = x.shape
    indices = (IndexTables() if tables is None else tables)[height, width, mh, mw, mode]
    flat = x.reshape(n, -1)                                   # [N, mh*mw*HW]
    values = flat.index_select(1, indices.forward_source)     # [N, K]
    if indices.forward_target is not None:
        zeros = flat.new_zeros(n, (height * width) ** 2)      # [N, HW*HW]
        values = zeros.index_copy(1, indices.forward_target, values)
    return values.view(n, height * width, height, width)


def lowered_psa_aggregate(features, attention, mode, mh, mw, softmax, scale, backend="torch"):
    """The fused aggregation as its dense composition (PSAMask as an operator, softmax, bmm)."""
    return psa_aggregate(features, attention, mode, (mh, mw), softmax=None if softmax == "none" else softmax,
                         normalization_factor=1.0 / scale, backend="dense")


class IndexTables(dict):
    """(H, W, mh, mw, mode) -> PSAMaskIndices, built on first use and then only read.

    Tracers run the model on fake tensors, where no index table can be computed (which
    cells fall inside the mask is data to them). So the model runs once eagerly with the
    lowered operators first, which fills the tables; the traced run reads them, and the
    tracer stores them in the graph as constants.
    """

    def __missing__(self, key):
        self[key] = indices = psa_mask_indices(*key, torch.device("cpu"))
        return indices


def lowered_psa_aggregate_logits(features, reduced, weight, mode, mh, mw, softmax, scale):
    """The aggregation from the logits' factors as the map (a 1x1 product), then the dense composition."""
    return lowered_psa_aggregate(features, over_completed_map(reduced, weight), mode, mh, mw, softmax, scale)


def lowered_psa_aggregate_logits_cupy(features, reduced, weight, mode, mh, mw, softmax, scale):
    """The tensor-core route's operator lowered the same way; it has no statistics to return."""
    return lowered_psa_aggregate_logits(features, reduced, weight, mode, mh, mw, softmax, scale), None


_LOWERED = ("psa_mask", "psa_aggregate", "psa_aggregate_logits", "psa_aggregate_logits_cupy")


@contextlib.contextmanager
def lowered_operators(tables):
    """Within the block, psanet_lite.ops runs PSAMask and the aggregation in standard operators."""
    original = {name: getattr(library, name) for name in _LOWERED}
    library.psa_mask = functools.partial(lowered_psa_mask, tables=tables)
    library.psa_aggregate = lowered_psa_aggregate
    library.psa_aggregate_logits = lowered_psa_aggregate_logits
    library.psa_aggregate_logits_cupy = lowered_psa_aggregate_logits_cupy
    try:
        yield
    finally:
        for name, operator in original.items():
            setattr(library, name, operator)
