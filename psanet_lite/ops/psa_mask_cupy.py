"""PSAMask on CUDA with the raw kernels of kernels/psamask.cu, launched through CuPy.

The kernels move raw bits, so the instance is picked by element size (float16/bfloat16
-> u16, float32 -> u32, float64 -> u64) and by access width: `_v<V>` moves V elements
(16 bytes) per load and store where W is a multiple of V and both tensors start on a
16-byte boundary, `_v1` one element otherwise. One launch per call on torch's current
stream, on a 2-D grid: one block per (slab, column of tiles) (the kernel's header says how);
tensors are passed as addresses, and the compiled function is cached (cupy_runtime).

The autograd formula lives with the operator (ops/library.py): the forward here is
psamask_forward_into, its gradient psamask_backward_into.
"""

import numpy as np

from psanet_lite.ops import cupy_runtime

KERNEL_FILE = "psamask.cu"
TILE, THREADS = 32, 128  # PSAMASK_TILE and PSAMASK_THREADS in kernels/psamask.cu
_SUFFIX = {2: "u16", 4: "u32", 8: "u64"}  # element size -> kernel instance
_VECTOR_BYTES = 16
_INT32_LIMIT = 2**31  # the kernels' in-slab offsets and blockIdx.x are 32-bit
_GRID_Y_LIMIT = 65535


def _ceil_div(a, b):
    return -(-a // b)


def access_width(tensors, width):
    """Elements per global access: 16 bytes' worth when W is a multiple of that and every
    tensor starts on a 16-byte boundary (vectors then never straddle a row), else 1.

    >>> x = torch.zeros(40)
    >>> access_width([x], 8), access_width([x[1:]], 8), access_width([x], 6)
    (4, 1, 1)
    """
    vector = _VECTOR_BYTES // tensors[0].element_size()
    aligned = all(tensor.data_ptr() % _VECTOR_BYTES == 0 for tensor in tensors)
    return vector if aligned and width % vector == 0 else 1


def launch_geometry(direction, n, height, width, mh, mw):
    """(grid, threads) of one launch: grid = (slabs, TILE-wide columns per slab).

    A slab is (n, th, h) forward and (n, i, h) backward, and what the kernel writes of it
    ([W, W] of Y forward, [mw, W] of dA backward) is cut into columns TILE wide; a block
    walks down one column. Raises ValueError where the kernel's 32-bit indices cannot reach.

    >>> launch_geometry("forward", 2, 32, 64, 97, 97), launch_geometry("backward", 2, 32, 64, 97, 97)
    (((2048, 2), 128), ((6208, 2), 128))
    """
    slabs = n * height * (mh if direction == "backward" else height)
    columns = _ceil_div(width, TILE)
    in_slab = max(mw, width) * height * width
    if in_slab >= _INT32_LIMIT or slabs >= _INT32_LIMIT or columns > _GRID_Y_LIMIT:
        raise ValueError(
            f"the 'cupy' backend indexes a slab with 32-bit integers and launches at most "
            f"{_INT32_LIMIT - 1} x {_GRID_Y_LIMIT} blocks; a {height}x{width} map with a {mh}x{mw} mask "
            f"and batch {n} needs {in_slab} elements per slab and {slabs} x {columns} blocks: use backend='torch'"
        )
    return (slabs, columns), THREADS


def _run(direction, source, out, height, width, mh, mw, mode):
    if source.device != out.device:
        raise ValueError(f"source and output must be on the same device, got {source.device} and {out.device}")
    if source.dtype != out.dtype:
        raise TypeError(f"source and output must have the same dtype, got {source.dtype} and {out.dtype}")
    if not (source.is_contiguous() and out.is_contiguous()):
        raise ValueError("source and output must be contiguous")
    size = out.element_size()
    if size not in _SUFFIX:
        raise TypeError(
            f"the 'cupy' backend handles 2-, 4- and 8-byte floats (float16, bfloat16, float32, "
            f"float64), got {out.dtype} ({size} byte)"
        )
    if out.numel() == 0:
        return out
    grid, threads = launch_geometry(direction, out.shape[0], height, width, mh, mw)
    vector = access_width([source, out], width)
    args = (
        np.uint64(source.data_ptr()),
        np.uint64(out.data_ptr()),
        np.int32(height),
        np.int32(width),
        np.int32(mh),
        np.int32(mw),
    )
    name = f"psamask_{direction}_{mode}_{_SUFFIX[size]}_v{vector}"
    cupy_runtime.launch_grid(KERNEL_FILE, name, grid, threads, args, out.device)
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


def psa_mask_cupy(x, mode, mh, mw):
    """CUDA-kernel PSAMask. x: CUDA [N, mh*mw, H, W] (validated by the caller) ->
    [N, H*W, H, W]. Not differentiable by itself: the operator psanet_lite::psa_mask
    (ops/library.py) pairs it with psamask_backward_into.

    >>> psa_mask_cupy(torch.randn(1, 9, 2, 2, device="cuda"), "collect", 3, 3).shape  # doctest: +SKIP
    torch.Size([1, 4, 2, 2])
    """
    x = x.contiguous()
    n, _, height, width = x.shape
    out = x.new_empty(n, height * width, height, width)
    return psamask_forward_into(x, out, mode, mh, mw)
