"""The small runtime shared by the CuPy kernels: probe, load, launch.

- cupy_status(device) -> (ok, reason): does CuPy allocate and launch a kernel on this
  CUDA device? Tried once per device and cached; never raises (a missing or broken
  CuPy must not break CPU use).
- kernel_path(name) -> Path of kernels/<name>, from a source checkout or the wheel.
- launch_grid(name, kernel_name, grid, threads, args, device): run a kernel of
  kernels/<name> (compiled by NVRTC once per device) on a grid of any shape, on torch's
  current CUDA stream, so the kernel is ordered with the torch work around it; its
  arguments are numpy scalars only (tensors travel as their addresses, pointer(t)), and
  the compiled function and the stream's CuPy handle are cached, so a call costs one
  launch and little Python.
- pointer(tensor) -> np.uint64 address of a tensor (0 for None), as launch_grid takes it.
"""

import functools
from importlib import resources
from pathlib import Path

import numpy as np
import torch

_PROBE_SOURCE = r"""
extern "C" __global__ void psanet_lite_probe(int* x) { x[threadIdx.x] += 1; }
"""


def _device_index(device):
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {device}")
    return torch.cuda.current_device() if device.index is None else device.index


@functools.lru_cache(maxsize=None)
def _probe(index):
    try:
        import cupy
    except Exception as error:  # ImportError, or a CUDA library that fails to load
        return False, f"cupy cannot be imported: {error}"
    try:
        with cupy.cuda.Device(index):
            x = cupy.zeros(4, dtype=cupy.int32)
            cupy.RawKernel(_PROBE_SOURCE, "psanet_lite_probe")((1,), (4,), (x,))
            if int(x.sum()) != 4:
                return False, "a probe kernel ran but wrote wrong values"
    except Exception as error:
        return False, f"cupy cannot allocate or launch on CUDA device {index}: {type(error).__name__}: {error}"
    return True, "ok"


def cupy_status(device):
    """(ok, reason) for running CuPy kernels on `device`; cached per device, never raises
    for a CUDA device.

    >>> cupy_status("cuda:0")  # doctest: +SKIP
    (True, 'ok')
    """
    return _probe(_device_index(device))


def kernel_path(name):
    """Path of a kernel source: psanet_lite/kernels/<name> in an installed wheel,
    else <repo>/kernels/<name> in a source checkout.

    >>> kernel_path("psamask.cu").name
    'psamask.cu'
    """
    packaged = resources.files("psanet_lite").joinpath("kernels", name)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "kernels" / name
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        f"kernel source {name!r} not found: looked for {packaged} (installed package) and "
        f"{checkout} (source checkout)"
    )


@functools.lru_cache(maxsize=None)
def _load_module(name, index):
    import cupy

    source = kernel_path(name).read_text()
    with cupy.cuda.Device(index):
        module = cupy.RawModule(code=source, options=("--std=c++14",))
        module.compile()
    return module


@functools.lru_cache(maxsize=64)
def _cupy_stream(torch_stream):
    """A CuPy handle of a torch CUDA stream (torch streams hash by handle and device)."""
    import cupy

    if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy >= 14 deprecates ExternalStream
        return cupy.cuda.Stream.from_external(torch_stream)
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, torch_stream.device_index)


def _current_torch_stream(index):
    """torch's current stream of device `index` as a CuPy stream."""
    return _cupy_stream(torch.cuda.current_stream(index))


@functools.lru_cache(maxsize=None)
def _kernel_function(name, kernel_name, index):
    return _load_module(name, index).get_function(kernel_name)


def pointer(tensor):
    """A tensor's address as launch_grid takes it (np.uint64); None is the null pointer.

    >>> pointer(None)
    np.uint64(0)
    """
    return np.uint64(0 if tensor is None else tensor.data_ptr())


def launch_grid(name, kernel_name, grid, threads, args, device):
    """Launch `kernel_name` of kernels/<name> on `grid` blocks (a tuple, up to 3 axes) of
    `threads` threads, on torch's current stream of `device`.

    args: numpy scalars of the kernel's parameter types; a pointer is np.uint64 of the
    tensor's data_ptr() (no DLPack view is made). The grid is taken as given: the caller
    keeps it within CUDA's limits and launches nothing for empty work.
    """
    import cupy

    index = _device_index(device)
    kernel = _kernel_function(name, kernel_name, index)
    with cupy.cuda.Device(index):
        kernel(tuple(grid), (threads,), args, stream=_current_torch_stream(index))
