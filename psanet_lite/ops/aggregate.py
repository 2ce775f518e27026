"""Fused PSA aggregation: PSAMask, softmax and the matrix product without the [HW, HW] matrix.

Every PSANet implementation runs, in each branch,

    Y   = psa_mask(A, mode)              # [N, HW, HW]   row r, column q
    P   = softmax(Y, dim=1)              # each column sums to 1
    out = bmm(F, P) * (1 / nf)           # [N, C, HW]    F: features [N, C, HW]

(nf: normalization_factor, None meaning mh*mw). Column q of Y holds at most mh*mw
values taken from the over-completed map A [N, mh*mw, H, W]; the rest is zero. This
module computes `out` from A directly, the way fused attention kernels avoid storing
attention scores.

Notation. Positions p = (ph, pw) are flattened to ph*W + pw. Mask cell k = (i, j),
stored as channel i*mw + j of A, has offset off(k) = (i - hh, j - hw) with
hh = (mh-1)//2, hw = (mw-1)//2 (integer division, also for even masks).

Columns of Y.
  collect:    psa_mask writes Y[t, s] = A[k, s] at t = s + off(k). Column q = s holds,
              for every cell k with q + off(k) inside the map, the value A[k, q] at
              row q + off(k).
  distribute: psa_mask writes Y[s, t] = A[k, s] at t = s + off(k). Column q = t receives
              one value from every position s whose window covers q: s = q - off(k),
              value A[k, q - off(k)], at row q - off(k).
  Both: with sign = +1 (collect) or -1 (distribute) the partner of (k, q) is
  r_k(q) = q + sign*off(k); cell k is written in column q iff r_k(q) is inside the
  map; its value z_k(q) = A[k, q] (collect) or A[k, r_k(q)] (distribute) sits at row
  r_k(q). Different cells land on different rows. W(q) is the set of written cells,
  n(q) = |W(q)|; the other HW - n(q) rows of column q are zero.

Softmax of column q ('reference', exactly what softmax(Y, dim=1) does). The zero rows
take part, so with m the max over the written values and over 0 when n(q) < HW:
    D(q)   = sum_{k in W(q)} exp(z_k(q) - m) + (HW - n(q)) * exp(0 - m)
    P_k(q) = exp(z_k(q) - m) / D(q)          (written cells)
    P_o(q) = exp(0 - m) / D(q)               (every unwritten row)
'window' leaves the zero rows out (P_o = 0, max and D over W(q) only), a softmax
over the mask window clipped to the map. None: P_k = z_k, P_o = 0 (no softmax).

Product. The unwritten rows of column q are all rows but the written ones, so
    out[c, q] * nf = sum_{k in W(q)} P_k(q) F[c, r_k(q)] + P_o(q) * (S[c] - sum_{k in W(q)} F[c, r_k(q)])
                   = sum_{k in W(q)} (P_k(q) - P_o(q)) F[c, r_k(q)] + P_o(q) S[c],
with S[c] = sum_r F[c, r]: only the window is read, plus one per-channel sum.
Cost: N*C*sum_q n(q) multiply-adds (at most N*C*HW*min(HW, mh*mw)) and O(N*(mh*mw + C)*HW)
memory, against N*C*HW^2 and two stored [N, HW, HW] tensors for the dense route.

Backward. With G = dL/dout and G' = G / nf:
  features: dF[c, r] = sum_q G'[c, q] P[r, q]
                     = U[c] + sum over (k, q) with r_k(q) = r of (P_k(q) - P_o(q)) G'[c, q],
            U[c] = sum_q P_o(q) G'[c, q]. The pairs with r_k(q) = r are q = r - sign*off(k),
            a gather in the opposite direction with the weights of column q.
  attention: dP[r, q] = sum_c G'[c, q] F[c, r], and the softmax backward per column is
            dY[r, q] = P[r, q] (dP[r, q] - delta(q)),
            delta(q) = sum_r P[r, q] dP[r, q] = sum_c G[c, q] out[c, q],
            a sum over the whole column: the unwritten rows' exp(0) share moves the max
            and the denominator and so reaches every written cell through delta, but it
            is no entry of A. Only written entries come from A, so
            dA at the place holding z_k(q) = P_k(q) (dP_k(q) - delta(q)),
            dP_k(q) = sum_c G'[c, q] F[c, r_k(q)]; without softmax dA = dP_k(q).

Backends: 'torch' (aggregate_torch: blocks of columns, CPU and any GPU; given the map's
factors instead of the map, aggregate_logits: the logits on the fly), 'cupy'
(aggregate_cupy: the CUDA kernels of kernels/psa_aggregate.cu; given the factors in 16
bits, aggregate_logits_cupy: the tensor-core kernels of kernels/psa_logits.cu), 'dense'
(the unfused composition above, ops/attention.py, the baseline the others are checked
and timed against) and 'reference' (the same on psa_mask's Python loops).
ops/backends.py says which runs when none is named, and why.
"""

import math
import numbers

import torch

from psanet_lite.ops import library
from psanet_lite.ops.aggregate_logits import over_completed_map
from psanet_lite.ops.attention import check_softmax, psa_attention
from psanet_lite.ops.aggregate_logits_cupy import supports as supports_logits
from psanet_lite.ops.backends import AGGREGATE_BACKENDS, FUSED_BACKENDS, choose_backend
from psanet_lite.ops.psa_mask import MODES, resolve_mask_size


def _check_tensor(name, x, layout):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have 4 dimensions {layout}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_same(features, name, x):
    if features.dtype != x.dtype:
        raise TypeError(f"features and {name} must have the same dtype, got {features.dtype} and {x.dtype}")
    if features.device != x.device:
        raise ValueError(f"features and {name} must be on the same device, got {features.device} and {x.device}")


def _check_factors(features, attention):
    """Validate the pair (reduced, weight); return (reduced, weight as [mh*mw, Cu])."""
    if len(attention) != 2:
        raise ValueError(f"attention as a sequence must be the pair (reduced, weight), got {len(attention)} items")
    reduced, weight = attention
    _check_tensor("reduced", reduced, "[N, Cu, H, W]")
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point torch.Tensor [mh*mw, Cu], got {weight!r:.80}")
    if weight.dim() == 4 and weight.shape[2:] == (1, 1):
        weight = weight.flatten(1)  # a 1x1 convolution's [mh*mw, Cu, 1, 1]
    if weight.dim() != 2 or weight.shape[1] != reduced.shape[1]:
        raise ValueError(
            f"weight must be [mh*mw, Cu] (or a 1x1 convolution's [mh*mw, Cu, 1, 1]) with Cu = "
            f"{reduced.shape[1]} (reduced's channels), got shape {tuple(weight.shape)}"
        )
    for name, x in (("reduced", reduced), ("weight", weight)):
        _check_same(features, name, x)
    return reduced, weight


def _check_inputs(features, attention, mode, mask_size, softmax, normalization_factor, compact):
    """Validate everything; return (mh, mw, scale)."""
    _check_tensor("features", features, "[N, C, H, W]")
    if isinstance(attention, (tuple, list)):
        reduced, weight = _check_factors(features, attention)
        spatial, name, cells, given = reduced, "reduced", weight.shape[0], f"weight {tuple(weight.shape)}"
    else:
        _check_tensor("attention", attention, "[N, mh*mw, H, W]")
        _check_same(features, "attention", attention)
        spatial, name, cells, given = attention, "attention", attention.shape[1], f"shape {tuple(attention.shape)}"
    n, _, height, width = features.shape
    if (spatial.shape[0], spatial.shape[2], spatial.shape[3]) != (n, height, width):
        raise ValueError(
            f"features [N, C, H, W] = {tuple(features.shape)} and {name} = {tuple(spatial.shape)} "
            f"must agree in N, H and W"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_softmax(softmax)
    mh, mw = (height, width) if compact else resolve_mask_size(mask_size, height, width)
    if cells != mh * mw:
        raise ValueError(
            f"attention must have mh*mw = {mh}*{mw} = {mh * mw} channels for mask_size "
            f"{'compact' if compact else repr(mask_size)} on a {height}x{width} map, "
            f"got {cells} ({given})"
        )
    if normalization_factor is None:
        normalization_factor = mh * mw
    if isinstance(normalization_factor, bool) or not isinstance(normalization_factor, numbers.Real):
        raise TypeError(
            f"normalization_factor must be None or a positive number, got {normalization_factor!r}"
        )
    if not (math.isfinite(normalization_factor) and normalization_factor > 0):
        raise ValueError(f"normalization_factor must be positive and finite, got {normalization_factor!r}")
    return mh, mw, 1.0 / normalization_factor


def _aggregate_dense(features, attention, mode, mask_size, softmax, scale, compact, mask_backend):
    """The unfused composition: [N, HW, HW] attention matrix, then bmm."""
    n, channels, height, width = features.shape
    hw = height * width
    weights = psa_attention(attention, mode, mask_size, softmax, compact, mask_backend)  # [N, HW, H, W]
    out = torch.bmm(features.reshape(n, channels, hw), weights.view(n, hw, hw)) * scale  # [N, C, HW]
    return out.view(n, channels, height, width)


def psa_aggregate(features, attention, mode, mask_size=None, softmax="reference",
                  normalization_factor=1.0, backend=None, compact=False):
    """Point-wise spatial attention: aggregate features with the over-completed map.

    Equal to `bmm(features.view(N, C, HW), softmax(psa_mask(attention, mode), dim=1))
    * (1 / normalization_factor)` reshaped to [N, C, H, W]; the fused backends compute
    it without the [N, HW, HW] matrix (see the module docstring for the derivation).

    Args:
        features: [N, C, H, W] floating-point tensor.
        attention: [N, mh*mw, H, W] over-completed map, same dtype and device; or the
            pair (reduced [N, Cu, H, W], weight [mh*mw, Cu]) whose 1x1 product it is
            (the bias-free last convolution of the attention branch): then backend 'torch'
            computes the logits on the fly (ops/aggregate_logits.py) and never stores the
            map, and so does 'cupy' for float16 and bfloat16 (the tensor-core kernels,
            ops/aggregate_logits_cupy.py); the other backends and dtypes build the map
            from the pair first.
        mode: 'collect' or 'distribute'.
        mask_size: None for (2H-1, 2W-1), an int, or (mh, mw).
        softmax: 'reference' (over the whole zero-filled column, as every PSANet
            implementation does), 'window' (over the mask cells inside the map only)
            or None (the raw attention values are the weights).
        normalization_factor: positive number, or None for mh*mw.
        backend: None (the fastest, 'dense': see ops/backends.py), 'reference',
            'dense' (the unfused composition), 'torch' or 'cupy' (fused).
        compact: attention has one channel per absolute position (H*W channels,
            mmsegmentation's compact mode; see ops/attention.py); dense routes only.

    Returns:
        [N, C, H, W] tensor of the input dtype.

    Example:
        >>> features, attention = torch.randn(2, 8, 5, 6), torch.randn(2, 9 * 11, 5, 6)
        >>> psa_aggregate(features, attention, "collect", (9, 11)).shape
        torch.Size([2, 8, 5, 6])
        >>> reduced, weight = torch.randn(2, 4, 5, 6), torch.randn(9 * 11, 4)
        >>> psa_aggregate(features, (reduced, weight), "distribute", (9, 11), backend="torch").shape
        torch.Size([2, 8, 5, 6])
    """
    mh, mw, scale = _check_inputs(features, attention, mode, mask_size, softmax, normalization_factor, compact)
    name = choose_backend(features.device, backend, AGGREGATE_BACKENDS)
    if isinstance(attention, (tuple, list)):
        reduced, weight = _check_factors(features, attention)
        settings = (mode, mh, mw, softmax or "none", scale)
        if name == "torch" and not compact:
            # the operator psanet_lite::psa_aggregate_logits (ops/aggregate_logits.py)
            return library.psa_aggregate_logits(features, reduced, weight, *settings)
        if name == "cupy" and not compact and supports_logits(features.dtype, features.device):
            # the operator psanet_lite::psa_aggregate_logits_cupy (ops/aggregate_logits_cupy.py,
            # the tensor-core kernels for 16-bit inputs); its statistics serve the backward
            return library.psa_aggregate_logits_cupy(features, reduced, weight, *settings)[0]
        attention = over_completed_map(reduced, weight)  # [N, mh*mw, H, W]
    if name not in FUSED_BACKENDS:
        mask_backend = "reference" if name == "reference" else None
        return _aggregate_dense(features, attention, mode, (mh, mw), softmax, scale, compact, mask_backend)
    if compact:
        raise ValueError(f"compact attention runs on the dense routes ('dense', 'reference'), not {name!r}")
    # the operator psanet_lite::psa_aggregate; it spells softmax=None as "none"
    return library.psa_aggregate(features, attention, mode, mh, mw, softmax or "none", scale, name)
