"""Fused PSA from the logits' factors on tensor cores: kernels/psa_logits.cu through CuPy.

Forward, one launch of psa_logits_aggregate: every block computes the logits of its 32
positions chunk by chunk (W @ U on tensor cores), runs the softmax online and aggregates
the features (F @ band on tensor cores), so neither the over-completed map nor the
[N, HW, HW] matrix exists (the derivation: ops/aggregate.py and ops/aggregate_logits.py).
It also writes, per position, the softmax max m, denominator D and unwritten-row weight
P_o ([3, N, HW] float32, kept for the backward).

Backward, with G = dOut:
- dF: psa_logits_aggregate again, the other way round (partners in the opposite
  direction, weights P_k - P_o of the partner column from the saved statistics, values G,
  plus sum_q P_o(q) G[c, q] for every position);
- dZ, the logits' gradient, by psa_logits_grad for a block of rows at a time ([N, rows*W,
  mh*mw], at most _GRAD_CHUNK_ELEMENTS), then dW += dZ^T U and dU = dZ W as matrix products.
The kernels take 16-bit inputs (float16 from sm_75, bfloat16 from sm_80) and accumulate in
float32. The operator psanet_lite::psa_aggregate_logits_cupy (ops/library.py) runs forward
and returns the statistics beside the output; its autograd formula calls backward with them.

    >>> supports(torch.float32, torch.device("cpu"))
    False
"""

import numpy as np
import torch

from psanet_lite.ops import cupy_runtime

KERNEL_FILE = "psa_logits.cu"

# #defines of kernels/psa_logits.cu: threads per block, positions and channels per block.
_THREADS, _POSITIONS, _CHANNELS = 256, 32, 512
_SUFFIX = {torch.float16: "f16", torch.bfloat16: "bf16"}
_MINIMUM_CAPABILITY = {torch.float16: (7, 5), torch.bfloat16: (8, 0)}  # mma.sync m16n8k8 / bf16 m16n8k16
_SOFTMAX = {None: 0, "reference": 1, "window": 2}
_GRAD_CHUNK_ELEMENTS = 2**25  # the logits' gradient of a block of rows, at most (64 MiB in 16 bits)


def supports(dtype, device):
    """True when the tensor-core kernels run `dtype` on `device` (a CUDA device of compute
    capability 7.5 for float16, 8.0 for bfloat16, where CuPy launches kernels)."""
    if device.type != "cuda" or dtype not in _SUFFIX:
        return False
    if torch.cuda.get_device_capability(device) < _MINIMUM_CAPABILITY[dtype]:
        return False
    return cupy_runtime.cupy_status(device)[0]


def _sizes(features, reduced, mh, mw):
    n, channels, height, width = features.shape
    return [np.int32(v) for v in (n, channels, reduced.shape[1], height, width, mh, mw)]


def _aggregate(values, reduced, weight, totals, stats, mh, mw, sign, softmax, stats_given, scale):
    """psa_logits_aggregate: forward (stats_given=False, stats written) or the feature
    gradient (True, stats read). values [N, C, H, W] -> [N, C, H, W]."""
    n, channels, height, width = values.shape
    out = torch.empty_like(values)
    args = [cupy_runtime.pointer(t) for t in (values, reduced, weight, totals, out, *stats)]
    args += _sizes(values, reduced, mh, mw)
    args += [np.int32(v) for v in (sign, _SOFTMAX[softmax], stats_given)] + [np.float32(scale)]
    if out.numel():
        grid = (n * height * -(-width // _POSITIONS), -(-channels // _CHANNELS))
        kernel = f"psa_logits_aggregate_{_SUFFIX[values.dtype]}"
        cupy_runtime.launch_grid(KERNEL_FILE, kernel, grid, _THREADS, args, values.device)
    return out


def forward(features, reduced, weight, mode, mh, mw, softmax, scale):
    """(out [N, C, H, W], statistics [3, N, HW] float32: m, D and P_o per position) on
    validated 16-bit CUDA inputs (see ops/aggregate.py): features [N, C, H, W], reduced
    [N, Cu, H, W], weight [mh*mw, Cu]; softmax 'reference' | 'window' | None (then the
    statistics are not written); scale = 1/normalization_factor."""
    features, reduced, weight = features.contiguous(), reduced.contiguous(), weight.contiguous()
    n, _, height, width = features.shape
    stats = torch.empty(3, n, height * width, dtype=torch.float32, device=features.device)
    totals = features.sum(dim=(2, 3), dtype=torch.float32) if softmax == "reference" else None  # [N, C]: S[c]
    sign = 1 if mode == "collect" else -1
    return _aggregate(features, reduced, weight, totals, stats, mh, mw, sign, softmax, 0, scale), stats


def backward(grad_out, features, reduced, weight, out, stats, mode, mh, mw, softmax, scale):
    """(dF, dU, dW) for the output gradient grad_out, from forward's inputs, out and statistics."""
    features, reduced, weight = features.contiguous(), reduced.contiguous(), weight.contiguous()
    g = grad_out.contiguous()                                                # [N, C, H, W]
    n, channels, height, width = features.shape
    hw, cells, collect = height * width, mh * mw, mode == "collect"
    # dF: the aggregation the other way round, plus U[c] = sum_q P_o(q) G[c, q]
    totals = None
    if softmax == "reference":
        totals = torch.bmm(g.view(n, channels, hw).float(), stats[2].view(n, hw, 1)).view(n, channels)
    grad_f = _aggregate(g, reduced, weight, totals, stats, mh, mw, -1 if collect else 1, softmax, 1, scale)
    # dZ by blocks of rows, then dW and dU; delta(q) = sum_c G[c, q] out[c, q]
    delta = (g.float() * out.float()).sum(dim=1).view(n, hw) if softmax is not None else None
    grad_u = torch.empty_like(reduced)                                       # [N, Cu, H, W]
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # [mh*mw, Cu]
    rows = max(1, min(height, _GRAD_CHUNK_ELEMENTS // max(1, n * width * cells)))
    for row0 in range(0, height, rows):
        count = min(rows, height - row0)
        grad_logits = torch.zeros(n, count * width, cells, dtype=features.dtype, device=features.device)
        args = [cupy_runtime.pointer(t) for t in (g, features, reduced, weight, stats[0], stats[1], delta, grad_logits)]
        args += _sizes(features, reduced, mh, mw)
        args += [np.int32(v) for v in (collect, _SOFTMAX[softmax], row0, count)] + [np.float32(scale)]
        if grad_logits.numel():
            grid = (n * count * -(-width // _POSITIONS),)
            kernel = f"psa_logits_grad_{_SUFFIX[features.dtype]}"
            cupy_runtime.launch_grid(KERNEL_FILE, kernel, grid, _THREADS, args, features.device)
        u_rows = reduced[:, :, row0:row0 + count].reshape(n, -1, count * width)      # [N, Cu, P]
        grad_w += (grad_logits.flatten(0, 1).t() @ u_rows.transpose(1, 2).flatten(0, 1)).float()
        grad_u[:, :, row0:row0 + count] = (grad_logits @ weight).transpose(1, 2).view(n, -1, count, width)
    return grad_f, grad_u, grad_w.to(weight.dtype)
