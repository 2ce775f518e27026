"""The tensor-core route from the logits' factors (kernels/psa_logits.cu, ops/aggregate_logits_cupy.py).

On any machine the kernel runs on the CPU (tests/cuda_on_cpu.py: g++, the block's threads as
OS threads, mma.sync by the PTX ISA's fragment layout), launched by aggregate_logits_cupy's
own glue; on a CUDA device with CuPy the real kernel runs against the torch route. The
expected values are float64 on the dense route (conv, psa_mask, softmax, bmm) of the inputs
rounded to the kernel's 16-bit type, so what is left is the kernel's own rounding: the
band weights and the output are stored in 16 bits, products accumulate in float32.
"""

import cuda_on_cpu
import pytest
import torch
from torch.library import opcheck

from psanet_lite.ops import aggregate_logits_cupy, cupy_runtime, library, psa_aggregate
from psanet_lite.ops.aggregate_logits import over_completed_map

TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2}


def factors(n, c, cu, h, w, mh, mw, dtype, seed=0):
    """features [N, C, H, W], reduced [N, Cu, H, W], weight [mh*mw, Cu] in `dtype`: logits
    of spread about 3, a mix of weights above and below the unwritten cells' exp(0)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c, h, w, generator=generator)
    reduced = torch.randn(n, cu, h, w, generator=generator)
    weight = 3 * torch.randn(mh * mw, cu, generator=generator) / cu**0.5
    return tuple(t.to(dtype) for t in (features, reduced, weight))


def route(features, reduced, weight, mode, mh, mw, softmax, scale):
    """The operator psanet_lite::psa_aggregate_logits_cupy, as psa_aggregate calls it on a GPU,
    here on CPU tensors (the kernels run on the CPU): the output, differentiable."""
    return library.psa_aggregate_logits_cupy(features, reduced, weight, mode, mh, mw, softmax or "none", scale)[0]


def dense_float64(features, reduced, weight, mode, mask, softmax, normalization_factor):
    f, u, w = (t.double() for t in (features, reduced, weight))
    return psa_aggregate(f, over_completed_map(u, w), mode, mask, softmax, normalization_factor, backend="dense")


@pytest.fixture(scope="module")
def cpu_kernel(tmp_path_factory):
    source = cupy_runtime.kernel_path(aggregate_logits_cupy.KERNEL_FILE).read_text()
    return cuda_on_cpu.compile_kernels(source, tmp_path_factory.mktemp("psa_logits_cpu"))


@pytest.fixture(scope="module")
def block_threads():
    return cuda_on_cpu.BlockThreads(256)


@pytest.fixture
def kernel_on_cpu(cpu_kernel, block_threads, monkeypatch):
    launched = []

    def launch_grid(name, kernel_name, grid, threads, args, device):
        assert name == aggregate_logits_cupy.KERNEL_FILE and threads == block_threads.count
        launched.append((kernel_name, tuple(grid)))
        cuda_on_cpu.run_blocks(block_threads, cpu_kernel, kernel_name, grid, args)

    monkeypatch.setattr(cupy_runtime, "launch_grid", launch_grid)
    return launched


# (N, C, Cu, H, W, mask): an even mask; a map wider than one 32-position block and a mask
# wider than one 64-cell chunk; batch 2 with the whole-image mask; more channels than one
# 512-channel block; a mask smaller than the map in both directions.
SHAPES = [
    (1, 5, 20, 4, 5, (4, 6)),
    (1, 7, 16, 3, 37, (3, 71)),
    (2, 3, 9, 3, 4, None),
    (1, 520, 8, 2, 3, (3, 3)),
    (1, 4, 24, 6, 40, (5, 9)),
]
CASES = [(shape, mode, softmax) for shape in SHAPES for mode in ("collect", "distribute")
         for softmax in ("reference", "window", None)]


@pytest.mark.parametrize("shape, mode, softmax", CASES, ids=str)
def test_kernel_forward_on_cpu_follows_float64(kernel_on_cpu, shape, mode, softmax):
    n, c, cu, h, w, mask = shape
    mh, mw = (2 * h - 1, 2 * w - 1) if mask is None else mask
    dtype = torch.float16
    features, reduced, weight = factors(n, c, cu, h, w, mh, mw, dtype, seed=sum(shape[:5]))
    expected = dense_float64(features, reduced, weight, mode, (mh, mw), softmax, 2.0)
    got = route(features, reduced, weight, mode, mh, mw, softmax, 0.5)
    assert got.dtype == dtype and kernel_on_cpu == [
        ("psa_logits_aggregate_f16", (n * h * -(-w // 32), -(-c // 512)))]
    torch.testing.assert_close(got.double(), expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("mode", ["collect", "distribute"])
def test_kernel_in_bfloat16_on_cpu(kernel_on_cpu, mode):
    features, reduced, weight = factors(1, 6, 20, 3, 35, 5, 67, torch.bfloat16, seed=7)
    expected = dense_float64(features, reduced, weight, mode, (5, 67), "reference", 1.0)
    got = route(features, reduced, weight, mode, 5, 67, "reference", 1.0)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), expected, rtol=5e-2, atol=5e-2)


# Backward: the feature gradient (the aggregation kernel the other way round, from the
# forward's statistics) and the logits' gradient kernel, in every mode; a map wider than one
# block, a mask wider than one chunk, more channels than 16 and Cu not a multiple of 16.
BACKWARD_CASES = [((1, 5, 12, 4, 6, (5, 7)), mode, softmax) for mode in ("collect", "distribute")
                  for softmax in ("reference", "window", None)] + [
    ((2, 20, 9, 3, 35, (3, 67)), "collect", "reference"), ((1, 20, 9, 3, 35, (5, 66)), "distribute", "reference")]


@pytest.mark.parametrize("shape, mode, softmax", BACKWARD_CASES, ids=str)
def test_kernel_backward_on_cpu_follows_float64(kernel_on_cpu, shape, mode, softmax):
    n, c, cu, h, w, (mh, mw) = shape
    features, reduced, weight = factors(n, c, cu, h, w, mh, mw, torch.float16, seed=11)
    leaves64 = [t.double().requires_grad_() for t in (features, reduced, weight)]
    expected = psa_aggregate(leaves64[0], over_completed_map(*leaves64[1:]), mode, (mh, mw), softmax, 2.0,
                             backend="dense")
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    expected.backward(grad)
    leaves = [t.clone().requires_grad_() for t in (features, reduced, weight)]
    got = route(*leaves, mode, mh, mw, softmax, 0.5)
    kernel_on_cpu.clear()
    got.backward(grad.to(torch.float16))
    # the feature gradient, then the logits' gradient: the forward does not run again
    assert [name for name, _ in kernel_on_cpu] == ["psa_logits_aggregate_f16", "psa_logits_grad_f16"]
    for name, mine, theirs in zip(("features", "reduced", "weight"), leaves, leaves64):
        scale = theirs.grad.abs().max().item()
        torch.testing.assert_close(mine.grad.double() / scale, theirs.grad / scale, rtol=0, atol=1e-2, msg=name)


def test_backward_works_through_blocks_of_rows(kernel_on_cpu, monkeypatch):
    """The logits' gradient in blocks of one row at a time equals it in one block."""
    features, reduced, weight = factors(1, 5, 12, 4, 6, 5, 7, torch.float16, seed=13)
    grads = []
    for elements in (2**25, 1):
        monkeypatch.setattr(aggregate_logits_cupy, "_GRAD_CHUNK_ELEMENTS", elements)
        leaves = [t.clone().requires_grad_() for t in (features, reduced, weight)]
        route(*leaves, "distribute", 5, 7, "reference", 1.0).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    assert sum(name.startswith("psa_logits_grad") for name, _ in kernel_on_cpu) == 1 + 4
    for one, rows in zip(*grads):
        torch.testing.assert_close(one.float(), rows.float(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("mode", ["collect", "distribute"])
def test_opcheck_the_operator(kernel_on_cpu, mode):
    """Schema, fake tensors and the autograd formula of psanet_lite::psa_aggregate_logits_cupy."""
    tensors = [t.requires_grad_() for t in factors(1, 5, 12, 3, 6, 3, 5, torch.float16, seed=5)]
    opcheck(torch.ops.psanet_lite.psa_aggregate_logits_cupy.default, (*tensors, mode, 3, 5, "reference", 0.5))


def test_supports_only_16_bit_cuda_tensors():
    cpu = torch.device("cpu")
    assert not aggregate_logits_cupy.supports(torch.float16, cpu)
    if torch.cuda.is_available():
        assert not aggregate_logits_cupy.supports(torch.float32, torch.device("cuda"))


# On a CUDA device with CuPy: the real kernel against the torch route from the factors.

def _cuda_kernel(dtype):
    return torch.cuda.is_available() and aggregate_logits_cupy.supports(dtype, torch.device("cuda"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape, mode, softmax", CASES[::2] + [((2, 512, 512, 16, 33, (31, 65)), "distribute", "reference")],
                         ids=str)
def test_cuda_kernel_follows_float64(dtype, shape, mode, softmax):
    if not _cuda_kernel(dtype):
        pytest.skip(f"needs a CUDA device where CuPy runs the {dtype} tensor-core kernel")
    n, c, cu, h, w, mask = shape
    mh, mw = (2 * h - 1, 2 * w - 1) if mask is None else mask
    features, reduced, weight = (t.cuda() for t in factors(n, c, cu, h, w, mh, mw, dtype, seed=3))
    leaves64 = [t.double().requires_grad_() for t in (features, reduced, weight)]
    expected = psa_aggregate(leaves64[0], over_completed_map(*leaves64[1:]), mode, (mh, mw), softmax, 1.0,
                             backend="dense")
    grad = torch.randn(expected.shape, dtype=torch.float64, device="cuda", generator=torch.Generator("cuda").manual_seed(4))
    expected.backward(grad)
    leaves = [t.clone().requires_grad_() for t in (features, reduced, weight)]
    got = psa_aggregate(leaves[0], tuple(leaves[1:]), mode, (mh, mw), softmax, 1.0, backend="cupy")
    torch.testing.assert_close(got.double(), expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    got.backward(grad.to(dtype))
    for name, mine, theirs in zip(("features", "reduced", "weight"), leaves, leaves64):
        scale = theirs.grad.abs().max().item()
        torch.testing.assert_close(mine.grad.double() / scale, theirs.grad / scale, rtol=0,
                                   atol=2 * TOLERANCE[dtype], msg=name)
