"""Which implementation runs: the one backend chooser of psa_mask and psa_aggregate.

psa_mask (the [N, HW, H, W] matrix) has three backends: 'reference' (Python loops over
positions and mask cells, ops/psa_mask_reference.py), 'torch' (strided copies of the
mask window, no index table, ops/psa_mask_torch.py) and 'cupy' (a raw CUDA kernel,
kernels/psamask.cu, CUDA tensors only).

psa_aggregate (mask, softmax and matrix product) has four: 'reference' (the dense
route on psa_mask's 'reference' backend, for checking), 'dense' (materialise the
[N, HW, HW] matrix, softmax, bmm: ops/attention.py), 'torch' (the fused route in
blocks of columns, ops/aggregate_torch.py) and 'cupy' (the fused CUDA kernels,
kernels/psa_aggregate.cu).

None picks the fastest on the measured shapes, on every device:

- psa_mask: 'torch'. On an H100 the torch backend (then an index gather; the strided copies
  that replaced it are not yet measured there) beat the CuPy kernel forward+backward
  at every published shape (benchmarks/results/psamask-nvidia-h100-80gb-hbm3-2026-11-22.md,
  e.g. Cityscapes 512x1024 N=2 collect: 0.62 ms against 1.08 ms); on a CPU it is the
  only compiled route.
- psa_aggregate: 'dense'. On an H100 the dense route is faster than the fused kernels
  forward+backward at every published shape
  (benchmarks/results/psa-nvidia-h100-80gb-hbm3-2026-11-23.md: 4.54 ms against 6.44 ms
  at Cityscapes 512x1024 N=2), and on one CPU core too
  (benchmarks/results/psa-cpu-1core-2026-11-22.md: 212 ms against 230 ms).

The fused routes save memory instead: they never store the [N, HW, HW] matrix.
`save_memory=True` (the head's `fused=True`) picks 'cupy' on CUDA when CuPy works,
else 'torch'. On both the head passes the map's factors (the last convolution's input
and weight), so the route computes the logits on the fly and never stores the
over-completed map either: 'torch' in chunks (ops/aggregate_logits.py), 'cupy' for
float16 and bfloat16 in tensor-core kernels (ops/aggregate_logits_cupy.py,
kernels/psa_logits.cu; for other dtypes 'cupy' builds the map and runs
kernels/psa_aggregate.cu). Neither is yet measured on a GPU: `bash
benchmarks/gpu_session.sh OUT tests psa psa-bf16` does it.
"""

import warnings

import torch

from psanet_lite.ops import cupy_runtime

PSA_MASK_BACKENDS = ("reference", "torch", "cupy")
AGGREGATE_BACKENDS = ("reference", "dense", "torch", "cupy")
FUSED_BACKENDS = ("torch", "cupy")  # psa_aggregate's routes that never store the matrix

_warned_cupy_unusable = False


def cupy_usable(device):
    """True when the CuPy kernels can run on `device`; warns once per process if CUDA can't.

    >>> cupy_usable(torch.device("cpu"))
    False
    """
    global _warned_cupy_unusable
    if device.type != "cuda":
        return False
    ok, reason = cupy_runtime.cupy_status(device)
    if not ok and not _warned_cupy_unusable:
        _warned_cupy_unusable = True
        warnings.warn(
            f"psanet_lite.ops: the 'cupy' backend is not used on {device} ({reason}); "
            "falling back to 'torch'",
            RuntimeWarning,
            stacklevel=3,
        )
    return ok


def check_backend(backend, choices):
    """Raise ValueError unless `backend` is None or one of `choices`.

    >>> check_backend("dense", AGGREGATE_BACKENDS)
    """
    if backend is not None and backend not in choices:
        raise ValueError(f"backend must be None or one of {choices}, got {backend!r}")


def choose_backend(device, backend, choices, save_memory=False):
    """The backend that runs on `device`: `backend` itself once checked, or the choice for None.

    Args:
        device: torch.device of the tensors.
        backend: None or one of `choices`.
        choices: PSA_MASK_BACKENDS or AGGREGATE_BACKENDS.
        save_memory: for None, pick a fused route ('cupy' when usable, else 'torch').

    Raises ValueError for an unknown name, or 'cupy' where CuPy cannot run.

    Example:
        >>> choose_backend(torch.device("cpu"), None, AGGREGATE_BACKENDS)
        'dense'
        >>> choose_backend(torch.device("cpu"), None, AGGREGATE_BACKENDS, save_memory=True)
        'torch'
    """
    check_backend(backend, choices)
    if backend is None:
        if save_memory:
            return "cupy" if cupy_usable(device) else "torch"  # one of FUSED_BACKENDS
        return "dense" if "dense" in choices else "torch"
    if backend == "cupy":
        if device.type != "cuda":
            raise ValueError(f"backend 'cupy' needs CUDA tensors, got tensors on {device}")
        ok, reason = cupy_runtime.cupy_status(device)
        if not ok:
            raise ValueError(f"backend 'cupy' is not usable on {device}: {reason}")
    return backend


def available_backends(device=None):
    """Names of the psa_mask backends usable now on `device` (default: the current CUDA
    device if there is one, else the CPU).

    'cupy' is listed only when CuPy allocates and launches a kernel on that device.

    >>> available_backends(torch.device("cpu"))
    ['reference', 'torch']
    """
    if device is None:
        cuda = torch.cuda.is_available()
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    device = torch.device(device)
    names = ["reference", "torch"]
    if device.type == "cuda" and cupy_runtime.cupy_status(device)[0]:
        names.append("cupy")
    return names
