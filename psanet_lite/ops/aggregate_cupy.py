"""PSA aggregation with the CUDA kernels of kernels/psa_aggregate.cu, launched through CuPy.

Forward: psa_softmax_stats (per column: max, 1/denominator, the unwritten rows'
weight P_o) then psa_gather (out = window sum + P_o * per-channel feature sum).
Backward: psa_attention_grad for dA, and psa_gather run the other way round for dF
(gather partners at q = r - sign*off(k), weights of column q, plus U[c]).
Saved for backward: features, attention, out and the three [N, HW] statistics, so
memory stays O(N*(mh*mw + C)*HW). The small reductions (per-channel sums, delta)
run in torch in the accumulator dtype (float32, float64 for float64 inputs).
"""

import numpy as np
import torch

from psanet_lite.ops import cupy_runtime

KERNEL_FILE = "psa_aggregate.cu"

# Tile sizes of the kernels (#defines in kernels/psa_aggregate.cu): a block is one warp
# wide (32 positions) and 8 warps deep, 256 threads.
_LANES, _WARPS, _CELLS, _GATHER_CHANNELS = 32, 8, 32, 64
_THREADS = _LANES * _WARPS
# Enough blocks to fill any current GPU many times over; the kernels walk more work with a
# block-stride loop.
MAX_BLOCKS = 65535 * 16

_SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}


def _ceil_div(a, b):
    return -(-a // b)


def _launch(name, dtype, blocks, args, device):
    """One launch of kernel `name` for `dtype` on min(blocks, MAX_BLOCKS) blocks."""
    grid = (max(1, min(blocks, MAX_BLOCKS)),)
    cupy_runtime.launch_grid(KERNEL_FILE, f"{name}_{_SUFFIX[dtype]}", grid, _THREADS, args, device)


class _Geometry:
    """Sizes and the direction flags shared by the launches of one call."""

    def __init__(self, features, mode, mh, mw):
        self.n, self.c, self.h, self.w = features.shape
        self.hw = self.h * self.w
        self.mh, self.mw = mh, mw
        self.sign = 1 if mode == "collect" else -1
        # collect reads A at the column's own position, distribute at the partner's.
        self.attention_at_partner = 0 if mode == "collect" else 1
        self.acc = torch.float64 if features.dtype == torch.float64 else torch.float32
        self.acc_scalar = np.float64 if features.dtype == torch.float64 else np.float32

    def sizes(self):
        return [np.int32(v) for v in (self.n, self.c, self.h, self.w, self.mh, self.mw)]

    def gather_blocks(self):
        return self.n * self.h * _ceil_div(self.w, _LANES) * _ceil_div(self.c, _GATHER_CHANNELS)


def _softmax_stats(a, geo, softmax, device):
    """column max, 1/denominator, unwritten-row weight: [N, HW] each (accumulator dtype)."""
    stats = torch.empty(3, geo.n, geo.hw, dtype=geo.acc, device=device)
    column_max, inv_denominator, outside = stats.unbind(0)
    args = [cupy_runtime.pointer(t) for t in (a, column_max, inv_denominator, outside)]
    args += [np.int32(v) for v in (geo.n, geo.h, geo.w, geo.mh, geo.mw, geo.sign,
                                   geo.attention_at_partner, softmax == "reference")]
    _launch("psa_softmax_stats", a.dtype, geo.n * geo.h * _ceil_div(geo.w, _LANES), args, device)
    return column_max, inv_denominator, outside


class _AggregateCupy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, attention, mode, mh, mw, softmax, scale):
        f, a = features.contiguous(), attention.contiguous()
        device = f.device
        geo = _Geometry(f, mode, mh, mw)
        stats = (None, None, None)
        totals = None
        if softmax is not None:
            stats = _softmax_stats(a, geo, softmax, device)
        if softmax == "reference":
            totals = f.sum(dim=(2, 3), dtype=geo.acc)                    # [N, C]: S[c]
        out = torch.empty_like(f)                                        # [N, C, H, W]
        args = [cupy_runtime.pointer(t) for t in (f, a, *stats, totals, out)]
        args += geo.sizes()
        args += [np.int32(v) for v in (geo.sign, 0, geo.attention_at_partner, softmax is not None, 1)]
        args.append(geo.acc_scalar(scale))
        _launch("psa_gather", f.dtype, geo.gather_blocks(), args, device)
        ctx.save_for_backward(f, a, out, *(s for s in stats if s is not None))
        ctx.settings = (mode, mh, mw, softmax, scale)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        f, a, out, *stats = ctx.saved_tensors
        mode, mh, mw, softmax, scale = ctx.settings
        if not stats:
            stats = [None, None, None]
        column_max, inv_denominator, outside = stats
        device = f.device
        geo = _Geometry(f, mode, mh, mw)
        g = grad_out.contiguous()                                        # [N, C, H, W]
        grad_f = grad_a = None
        if ctx.needs_input_grad[1]:
            delta = None
            if softmax is not None:
                # delta(q) = sum_c G[c, q] out[c, q]: the column sum of P * dP.
                delta = (g.to(geo.acc) * out.to(geo.acc)).sum(dim=1).view(geo.n, geo.hw)
            grad_a = torch.zeros_like(a)                                 # unwritten cells stay 0
            args = [cupy_runtime.pointer(t) for t in (g, f, a, column_max, inv_denominator, delta, grad_a)]
            args += geo.sizes()
            args += [np.int32(v) for v in (geo.sign, geo.attention_at_partner, softmax is not None)]
            args.append(geo.acc_scalar(scale))
            blocks = geo.n * geo.h * geo.mh * _ceil_div(geo.w, _LANES) * _ceil_div(geo.mw, _CELLS)
            _launch("psa_attention_grad", f.dtype, blocks, args, device)
        if ctx.needs_input_grad[0]:
            totals = None
            if softmax == "reference":
                # U[c] = sum_q P_o(q) G[c, q] (scale applied in the kernel).
                g_acc = g.view(geo.n, geo.c, geo.hw).to(geo.acc)
                totals = torch.bmm(g_acc, outside.view(geo.n, geo.hw, 1)).view(geo.n, geo.c)
            grad_f = torch.empty_like(f)
            args = [cupy_runtime.pointer(t) for t in (g, a, column_max, inv_denominator, outside, totals, grad_f)]
            args += geo.sizes()
            # The way back: partners at q = r - sign*off(k), statistics of column q, and the
            # attention value read where the forward read it, now the partner or not.
            args += [np.int32(v) for v in (-geo.sign, 1, 1 - geo.attention_at_partner,
                                           softmax is not None, 0)]
            args.append(geo.acc_scalar(scale))
            _launch("psa_gather", f.dtype, geo.gather_blocks(), args, device)
        return grad_f, grad_a, None, None, None, None, None


def psa_aggregate_cupy(features, attention, mode, mh, mw, softmax, scale):
    """Fused aggregation on validated CUDA inputs (see psanet_lite.ops.aggregate).

    features [N, C, H, W], attention [N, mh*mw, H, W] (float32, float64, float16 or
    bfloat16); softmax 'reference' | 'window' | None; scale = 1/normalization_factor.
    Returns [N, C, H, W].
    """
    return _AggregateCupy.apply(features, attention, mode, mh, mw, softmax, scale)
