"""PSAMask on CUDA with the raw kernel kernels/psamask.cu, loaded through CuPy.

The kernels move raw bits, so a tensor is handed to CuPy as a same-size integer view
(float16/bfloat16 -> int16, float32 -> int32, float64 -> int64) and the kernel
instance is picked by element size. Memory is shared with torch through DLPack and
the kernels run on torch's current stream (see cupy_runtime).
"""

import numpy as np
import torch

from psanet_lite.ops import cupy_runtime

KERNEL_FILE = "psamask.cu"
_BITS = {2: ("u16", torch.int16), 4: ("u32", torch.int32), 8: ("u64", torch.int64)}


def _bits(tensor):
    """(kernel suffix, integer view of the tensor) for the tensor's element size."""
    size = tensor.element_size()
    if size not in _BITS:
        raise TypeError(
            f"the 'cupy' backend handles 2-, 4- and 8-byte floats (float16, bfloat16, float32, "
            f"float64), got {tensor.dtype} ({size} byte)"
        )
    suffix, int_dtype = _BITS[size]
    return suffix, tensor.view(int_dtype)


def _run(kind, source, out, height, width, mh, mw, mode):
    if source.device != out.device:
        raise ValueError(f"source and output must be on the same device, got {source.device} and {out.device}")
    if source.dtype != out.dtype:
        raise TypeError(f"source and output must have the same dtype, got {source.dtype} and {out.dtype}")
    if not (source.is_contiguous() and out.is_contiguous()):
        raise ValueError("source and output must be contiguous")
    suffix, source_bits = _bits(source)
    _, out_bits = _bits(out)
    module = cupy_runtime.load_module(KERNEL_FILE, out.device)
    total = out.numel()
    args = (
        source_bits,
        out_bits,
        np.int64(total),
        np.int32(height),
        np.int32(width),
        np.int32(mh),
        np.int32(mw),
        np.int32(mode == "distribute"),
    )
    cupy_runtime.launch(module, f"psamask_{kind}_{suffix}", total, args, out.device)
    return out


def psamask_forward_into(x, out, mode, mh, mw):
    """Write PSAMask(x) into `out`, every element of it (the zeros included).

    x: contiguous CUDA [N, mh*mw, H, W]; out: contiguous [N, H*W, H, W], same dtype/device.
    Returns out. Exposed so tests can poison `out` and check it is fully written.
    """
    n, _, height, width = x.shape
    expected = (n, height * width, height, width)
    if tuple(out.shape) != expected:
        raise ValueError(f"out must have shape {expected}, got {tuple(out.shape)}")
    return _run("forward", x, out, height, width, mh, mw, mode)


def psamask_backward_into(grad_y, out, mode, mh, mw):
    """Write the gradient w.r.t. x of PSAMask into `out` [N, mh*mw, H, W], every element.

    grad_y: contiguous CUDA [N, H*W, H, W]. Returns out.
    """
    n, channels, height, width = out.shape
    expected = (n, height * width, height, width)
    if channels != mh * mw or tuple(grad_y.shape) != expected:
        raise ValueError(
            f"grad_y must have shape {expected} and out {mh * mw} channels, got "
            f"{tuple(grad_y.shape)} and {tuple(out.shape)}"
        )
    return _run("backward", grad_y, out, height, width, mh, mw, mode)


class _PSAMaskCuPy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mode, mh, mw):
        x = x.contiguous()
        n, channels, height, width = x.shape
        y = torch.empty(n, height * width, height, width, dtype=x.dtype, device=x.device)
        psamask_forward_into(x, y, mode, mh, mw)
        ctx.meta = (x.shape, mode, mh, mw)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        shape, mode, mh, mw = ctx.meta
        grad_x = torch.empty(shape, dtype=grad_y.dtype, device=grad_y.device)
        psamask_backward_into(grad_y.contiguous(), grad_x, mode, mh, mw)
        return grad_x, None, None, None


def psa_mask_cupy(x, mode, mh, mw):
    """CUDA-kernel PSAMask. x: CUDA [N, mh*mw, H, W] (validated by the caller) ->
    [N, H*W, H, W]; differentiable (first order).

    >>> psa_mask_cupy(torch.randn(1, 9, 2, 2, device="cuda"), "collect", 3, 3).shape  # doctest: +SKIP
    torch.Size([1, 4, 2, 2])
    """
    return _PSAMaskCuPy.apply(x, mode, mh, mw)
