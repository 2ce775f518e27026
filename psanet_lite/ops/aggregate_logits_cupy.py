"""Fused PSA from the logits' factors on tensor cores: kernels/psa_logits.cu through CuPy.

The forward is one kernel launch: every block computes the logits of its 32 positions
chunk by chunk (W @ U on tensor cores), runs the softmax online and aggregates the features
(F @ band on tensor cores), so neither the over-completed map nor the [N, HW, HW] matrix
exists (the derivation: ops/aggregate.py and ops/aggregate_logits.py). The kernel takes
16-bit inputs (float16 from sm_75, bfloat16 from sm_80) and accumulates in float32.

The backward recomputes the logits chunk by chunk in torch
(aggregate_logits.backward_by_recomputation; its products run on cuBLAS), with the
softmax max and denominator the kernel wrote for distribute.

    >>> supports(torch.float32, torch.device("cpu"))
    False
"""

import numpy as np
import torch

from psanet_lite.ops import aggregate_logits, cupy_runtime

KERNEL_FILE = "psa_logits.cu"

# #defines of kernels/psa_logits.cu: threads per block, positions and channels per block.
_THREADS, _POSITIONS, _CHANNELS = 256, 32, 512
_SUFFIX = {torch.float16: "f16", torch.bfloat16: "bf16"}
_MINIMUM_CAPABILITY = {torch.float16: (7, 5), torch.bfloat16: (8, 0)}  # mma.sync m16n8k8 / bf16 m16n8k16
_SOFTMAX = {None: 0, "reference": 1, "window": 2}


def supports(dtype, device):
    """True when the tensor-core kernel runs `dtype` on `device` (a CUDA device of compute
    capability 7.5 for float16, 8.0 for bfloat16, where CuPy launches kernels)."""
    if device.type != "cuda" or dtype not in _SUFFIX:
        return False
    if torch.cuda.get_device_capability(device) < _MINIMUM_CAPABILITY[dtype]:
        return False
    return cupy_runtime.cupy_status(device)[0]


def _pointer(tensor):
    return np.uint64(0 if tensor is None else tensor.data_ptr())


def _forward(features, reduced, weight, mode, mh, mw, softmax, scale):
    """out [N, C, H, W] and the softmax statistics top, total [N, HW] (float32)."""
    n, channels, height, width = features.shape
    hw = height * width
    out = torch.empty_like(features)
    stats = torch.empty(2, n, hw, dtype=torch.float32, device=features.device)  # top, total
    totals = features.sum(dim=(2, 3), dtype=torch.float32) if softmax == "reference" else None  # [N, C]: S[c]
    grid = (n * height * -(-width // _POSITIONS), -(-channels // _CHANNELS))
    args = [_pointer(t) for t in (features, reduced, weight, totals, out, stats[0], stats[1])]
    args += [np.int32(v) for v in (n, channels, reduced.shape[1], height, width, mh, mw,
                                   1 if mode == "collect" else -1, _SOFTMAX[softmax])]
    args.append(np.float32(scale))
    if out.numel():
        kernel = f"psa_logits_forward_{_SUFFIX[features.dtype]}"
        cupy_runtime.launch_grid(KERNEL_FILE, kernel, grid, _THREADS, args, features.device)
    return out, stats[0], stats[1]


class _AggregateLogitsCupy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, reduced, weight, mode, mh, mw, softmax, scale):
        features, reduced, weight = features.contiguous(), reduced.contiguous(), weight.contiguous()
        out, top, total = _forward(features, reduced, weight, mode, mh, mw, softmax, scale)
        n, channels, height, width = features.shape
        if mode == "distribute" and softmax is not None:
            top, total = top.view(n, 1, -1), total.view(n, 1, -1)            # [N, 1, HW]
        else:
            top = total = None
        ctx.save_for_backward(features, reduced, weight, out, top, total)
        ctx.settings = (mode, (n, channels, height, width, mh, mw), softmax, scale)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        grads = aggregate_logits.backward_by_recomputation(grad_out.contiguous(), *ctx.saved_tensors, *ctx.settings)
        return grads + (None,) * 5


def psa_aggregate_logits_cupy(features, reduced, weight, mode, mh, mw, softmax, scale):
    """Fused aggregation from the logits' factors on validated 16-bit CUDA inputs (see
    ops/aggregate.py): features [N, C, H, W], reduced [N, Cu, H, W], weight [mh*mw, Cu];
    softmax 'reference' | 'window' | None; scale = 1/normalization_factor. -> [N, C, H, W]."""
    return _AggregateLogitsCupy.apply(features, reduced, weight, mode, mh, mw, softmax, scale)
