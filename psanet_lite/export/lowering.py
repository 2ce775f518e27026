"""PSAMask in standard operators: a Gather (and a ScatterND) with a constant index table.

ONNX Runtime, TensorRT or onnxruntime-web implement no psanet_lite::psa_mask, and a graph
that names an operator its runtime lacks does not load (mmcv's PSAMask export fails this
way). But for a fixed map size H x W and mask mh x mw, PSAMask moves numbers between
fixed places: the index map of psanet_lite.ops.psa_mask_torch, computed once. Written
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

import torch

from psanet_lite.ops import library, psa_aggregate
from psanet_lite.ops.psa_mask_torch import psa_mask_indices


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


@contextlib.contextmanager
def lowered_operators(tables):
    """Within the block, psanet_lite.ops runs PSAMask and the aggregation in standard operators."""
    original = library.psa_mask, library.psa_aggregate
    library.psa_mask = functools.partial(lowered_psa_mask, tables=tables)
    library.psa_aggregate = lowered_psa_aggregate
    try:
        yield
    finally:
        library.psa_mask, library.psa_aggregate = original
