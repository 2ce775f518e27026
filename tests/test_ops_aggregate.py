"""psa_aggregate against the unfused composition psa_mask -> softmax -> bmm.

The oracle below is written from the definition (mmsegmentation's PSAHead) with the
library's psa_mask, torch.softmax and torch.bmm; every fused path is compared with it:
the torch backend directly, the CUDA kernels on a GPU when there is one, and the same
kernel source compiled for the CPU (g++ with a small shim that runs the 256 threads of
a block as OS threads) so that the kernels and their CuPy glue run even without a GPU.
"""

import functools

import cuda_on_cpu
import pytest
import torch

from psanet_lite.ops import aggregate_cupy, aggregate_torch, cupy_runtime, psa_aggregate, psa_mask
from psanet_lite.ops.backends import AGGREGATE_BACKENDS, choose_backend


def unfused(features, attention, mode, mask_size, softmax="reference", normalization_factor=1.0):
    """[N, C, H, W]: bmm(F, softmax(psa_mask(A), dim=1)) * (1 / nf), the dense route."""
    n, c, h, w = features.shape
    y = psa_mask(attention, mode, mask_size, backend="torch").reshape(n, h * w, h * w)
    if softmax == "window":
        written = psa_mask(torch.ones_like(attention), mode, mask_size, backend="torch").reshape(n, h * w, h * w)
        y = y.masked_fill(written == 0, float("-inf"))
    if softmax is not None:
        y = torch.softmax(y, dim=1)
    if normalization_factor is None:
        normalization_factor = attention.shape[1]
    return (torch.bmm(features.reshape(n, c, h * w), y) * (1.0 / normalization_factor)).reshape(n, c, h, w)


def cells(mask_size, h, w):
    if mask_size is None:
        return (2 * h - 1) * (2 * w - 1)
    if isinstance(mask_size, int):
        return mask_size * mask_size
    return mask_size[0] * mask_size[1]


def inputs(n, c, h, w, mask_size, dtype=torch.float64, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c, h, w, generator=generator, dtype=torch.float64)
    # Spread 3: a mix of weights above and below the unwritten cells' exp(0).
    attention = 3 * torch.randn(n, cells(mask_size, h, w), h, w, generator=generator, dtype=torch.float64)
    return features.to(device, dtype), attention.to(device, dtype)


# (N, C, H, W, mask_size): odd, even and mixed masks, smaller and larger than the map,
# the over-completed default, non-square maps, batch 1 and 2.
SHAPES = [
    (2, 5, 5, 6, (3, 5)),
    (1, 4, 5, 6, 4),
    (2, 3, 6, 5, (13, 3)),
    (1, 6, 4, 7, None),
    (2, 3, 3, 8, (4, 7)),
    (1, 2, 2, 3, 1),
]
SOFTMAX = ["reference", "window", None]
MODES = ["collect", "distribute"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax", SOFTMAX)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_torch_backend_equals_unfused_float64(shape, softmax, mode):
    n, c, h, w, mask_size = shape
    features, attention = inputs(n, c, h, w, mask_size)
    expected = unfused(features, attention, mode, mask_size, softmax)
    got = psa_aggregate(features, attention, mode, mask_size, softmax=softmax, backend="torch")
    assert got.shape == (n, c, h, w) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("normalization_factor", [None, 3.5, 0.25])
def test_normalization_factor_divides_and_none_means_mask_cells(normalization_factor):
    features, attention = inputs(2, 3, 4, 5, (5, 3))
    expected = unfused(features, attention, "distribute", (5, 3), "reference", normalization_factor)
    got = psa_aggregate(features, attention, "distribute", (5, 3), normalization_factor=normalization_factor)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    plain = psa_aggregate(features, attention, "distribute", (5, 3))
    factor = 15 if normalization_factor is None else normalization_factor
    torch.testing.assert_close(got * factor, plain, rtol=1e-12, atol=1e-12)


def test_softmax_modes_differ_only_when_cells_are_unwritten():
    # Over-completed mask: every column is fully written, so 'window' == 'reference';
    # a small mask leaves zero rows whose exp(0) share only 'reference' counts.
    features, attention = inputs(1, 3, 3, 4, None)
    full = [psa_aggregate(features, attention, "collect", None, softmax=s) for s in ("reference", "window")]
    torch.testing.assert_close(full[0], full[1], rtol=0, atol=1e-12)
    features, attention = inputs(1, 3, 5, 5, 3)
    small = [psa_aggregate(features, attention, "collect", 3, softmax=s) for s in ("reference", "window")]
    assert (small[0] - small[1]).abs().max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax", SOFTMAX)
def test_torch_backend_in_many_blocks_matches_forward_and_backward(mode, softmax):
    # A budget of 40 elements forces blocks of a single column: the blocked forward,
    # the recomputing backward and the index bookkeeping at block edges are exercised.
    n, c, h, w, mask_size = 2, 3, 4, 5, (5, 4)
    features, attention = inputs(n, c, h, w, mask_size)
    assert aggregate_torch.chunk_width(n, h * w, chunk_elements=40) == 1
    f1, a1 = features.clone().requires_grad_(), attention.clone().requires_grad_()
    f2, a2 = features.clone().requires_grad_(), attention.clone().requires_grad_()
    expected = unfused(f1, a1, mode, mask_size, softmax, 2.0)
    got = aggregate_torch.psa_aggregate_torch(f2, a2, mode, 5, 4, softmax, 0.5, chunk_elements=40)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected.backward(grad)
    got.backward(grad)
    torch.testing.assert_close(f2.grad, f1.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(a2.grad, a1.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax", SOFTMAX)
def test_torch_backend_gradcheck(mode, softmax):
    features, attention = inputs(2, 2, 2, 3, (3, 2))
    features.requires_grad_()
    attention.requires_grad_()

    def fused(f, a):
        return psa_aggregate(f, a, mode, (3, 2), softmax=softmax, normalization_factor=1.5, backend="torch")

    # fast_mode checks a random projection of the Jacobian; the element-wise comparison
    # with the dense route's autograd is the test above.
    assert torch.autograd.gradcheck(fused, (features, attention), fast_mode=True)


def test_dense_backend_is_the_unfused_composition():
    features, attention = inputs(2, 3, 4, 5, (3, 3))
    for softmax in SOFTMAX:
        torch.testing.assert_close(
            psa_aggregate(features, attention, "collect", 3, softmax=softmax, backend="dense"),
            unfused(features, attention, "collect", 3, softmax),
            rtol=0, atol=1e-12,
        )


def test_float32_and_bfloat16_follow_float64():
    features, attention = inputs(2, 4, 5, 6, (5, 5))
    expected = unfused(features, attention, "distribute", 5)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        got = psa_aggregate(features.to(dtype), attention.to(dtype), "distribute", 5)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)


def test_default_backend_on_cpu_is_dense_and_torch_saves_memory():
    assert choose_backend(torch.device("cpu"), None, AGGREGATE_BACKENDS) == "dense"
    assert choose_backend(torch.device("cpu"), None, AGGREGATE_BACKENDS, save_memory=True) == "torch"


# Bad input: clear errors naming what was expected.

def test_rejects_mismatched_or_invalid_inputs():
    f, a = inputs(2, 3, 4, 5, 3)
    cases = [
        ((f, a[:1], "collect", 3), ValueError, "agree in N, H and W"),
        ((f, a[..., :4], "collect", 3), ValueError, "agree in N, H and W"),
        ((f, a, "collect", 5), ValueError, "mh\\*mw = 5\\*5 = 25 channels"),
        ((f, a, "gather", 3), ValueError, "mode must be one of"),
        ((f, a.float(), "collect", 3), TypeError, "same dtype"),
        ((f.long(), a.long(), "collect", 3), TypeError, "floating-point"),
        ((f[0], a, "collect", 3), ValueError, "4 dimensions"),
        ((f.numpy(), a, "collect", 3), TypeError, "torch.Tensor"),
        ((f, a, "collect", (3, 3, 3)), ValueError, "mask_size"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            psa_aggregate(*args)
    with pytest.raises(ValueError, match="softmax must be one of"):
        psa_aggregate(f, a, "collect", 3, softmax="full")
    with pytest.raises(ValueError, match="normalization_factor must be positive"):
        psa_aggregate(f, a, "collect", 3, normalization_factor=0)
    with pytest.raises(TypeError, match="normalization_factor"):
        psa_aggregate(f, a, "collect", 3, normalization_factor="1")
    with pytest.raises(ValueError, match="backend must be None or one of"):
        psa_aggregate(f, a, "collect", 3, backend="triton")
    with pytest.raises(ValueError, match="'cupy' needs CUDA tensors"):
        psa_aggregate(f, a, "collect", 3, backend="cupy")


def test_rejects_tensors_on_different_devices():
    f, a = inputs(1, 2, 3, 3, 3)
    with pytest.raises(ValueError, match="same device"):
        psa_aggregate(f, a.to("meta"), "collect", 3)


# The CUDA kernels run on the CPU (tests/cuda_on_cpu.py: g++ and a shim, the block's
# threads as OS threads), the two PTX conversions replaced by _Float16 casts.
# cupy_runtime's launcher is replaced, so aggregate_cupy's own argument lists and launch
# sizes are what is tested. The grid is capped at 3 blocks so that the kernels'
# block-stride loops are walked too.

_PTX_CONVERSIONS = {
    'asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p->bits));': "f = (float)std::bit_cast<_Float16>(p->bits);",
    'asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));': "h = std::bit_cast<unsigned short>((_Float16)v);",
}
_GRID_CAP = 3


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    source = cupy_runtime.kernel_path(aggregate_cupy.KERNEL_FILE).read_text()
    for ptx, cpu in _PTX_CONVERSIONS.items():
        assert ptx in source, f"the shim expects {ptx!r} in the kernel source"
        source = source.replace(ptx, cpu)
    return cuda_on_cpu.compile_kernels(source, tmp_path_factory.mktemp("psa_aggregate_cpu"))


def _emulated_launch(block_threads, library, name, kernel_name, grid, threads, args, device):
    assert name == aggregate_cupy.KERNEL_FILE and threads == block_threads.count
    (blocks,) = grid
    assert 1 <= blocks <= aggregate_cupy.MAX_BLOCKS
    cuda_on_cpu.run_blocks(block_threads, library, kernel_name, (min(blocks, _GRID_CAP),), args)


@pytest.fixture(scope="module")
def block_threads():
    return cuda_on_cpu.BlockThreads(256)


@pytest.fixture
def kernels_on_cpu(cpu_kernels, block_threads, monkeypatch):
    monkeypatch.setattr(cupy_runtime, "launch_grid", functools.partial(_emulated_launch, block_threads, cpu_kernels))
    return aggregate_cupy.psa_aggregate_cupy


# Every mode and softmax on small maps; then maps wider than one 32-position tile with
# more channels than one 64-channel tile and masks wider than one 32-cell chunk (in
# both directions, which walk the partner segments both ways).
KERNEL_CASES = [
    (shape, softmax, mode)
    for shape in [(1, 5, 4, 5, (4, 6)), (1, 33, 5, 3, (9, 1)), (2, 3, 3, 4, None)]
    for softmax in SOFTMAX
    for mode in MODES
] + [((1, 70, 2, 37, (3, 41)), "reference", "collect"), ((1, 70, 2, 37, (2, 40)), "window", "distribute")]


@pytest.mark.parametrize("shape, softmax, mode", KERNEL_CASES, ids=str)
def test_kernels_forward_and_backward_float64_on_cpu(kernels_on_cpu, monkeypatch, shape, softmax, mode):
    n, c, h, w, mask_size = shape
    features, attention = inputs(n, c, h, w, mask_size, seed=3)
    mh, mw = (2 * h - 1, 2 * w - 1) if mask_size is None else mask_size
    f1, a1 = features.clone().requires_grad_(), attention.clone().requires_grad_()
    f2, a2 = features.clone().requires_grad_(), attention.clone().requires_grad_()
    expected = unfused(f1, a1, mode, mask_size, softmax, 2.0)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    expected.backward(grad)
    # Outputs the kernels must fill start as NaN, so an element they skip shows up.
    full_like = torch.full_like
    monkeypatch.setattr(torch, "empty_like", lambda t, **kw: full_like(t, float("nan"), **kw))
    got = kernels_on_cpu(f2, a2, mode, mh, mw, softmax, 0.5)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    got.backward(grad)
    torch.testing.assert_close(f2.grad, f1.grad, rtol=0, atol=1e-11)
    torch.testing.assert_close(a2.grad, a1.grad, rtol=0, atol=1e-11)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.float16, 1e-2), (torch.bfloat16, 6e-2)])
def test_kernels_in_low_precision_on_cpu(kernels_on_cpu, dtype, tol):
    n, c, h, w, mask_size = 1, 66, 2, 34, (3, 35)
    features, attention = inputs(n, c, h, w, mask_size, seed=5)
    f1, a1 = features.clone().requires_grad_(), attention.clone().requires_grad_()
    expected = unfused(f1, a1, "collect", mask_size, "reference")
    # Inputs rounded to the low-precision type: the kernel's own error is what is left.
    f2 = features.to(dtype).requires_grad_()
    a2 = attention.to(dtype).requires_grad_()
    got = kernels_on_cpu(f2, a2, "collect", *mask_size, "reference", 1.0)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    expected.backward(grad)
    got.backward(grad.to(dtype))
    torch.testing.assert_close(f2.grad.double(), f1.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(a2.grad.double(), a1.grad, rtol=tol, atol=tol)


# On a CUDA device with CuPy: the real kernels against the torch backend.

def _cuda_with_cupy():
    return torch.cuda.is_available() and cupy_runtime.cupy_status(torch.device("cuda"))[0]


gpu = pytest.mark.skipif(not _cuda_with_cupy(), reason="needs a CUDA device where CuPy runs kernels")


def _poison_allocator(nbytes):
    """Leave NaN in memory the caching allocator hands out next, so unwritten outputs show."""
    block = torch.full((nbytes // 4 + 1,), float("nan"), device="cuda")
    del block


@gpu
def test_cuda_default_backend_is_dense_and_cupy_saves_memory():
    assert choose_backend(torch.device("cuda"), None, AGGREGATE_BACKENDS) == "dense"
    assert choose_backend(torch.device("cuda"), None, AGGREGATE_BACKENDS, save_memory=True) == "cupy"


@gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softmax", SOFTMAX)
@pytest.mark.parametrize("shape", [(2, 96, 9, 40, (7, 45)), (1, 16, 12, 10, None), (2, 8, 6, 7, 4)], ids=str)
def test_cuda_kernels_match_torch_backend(shape, softmax, mode):
    n, c, h, w, mask_size = shape
    features, attention = inputs(n, c, h, w, mask_size, dtype=torch.float64, device="cuda", seed=7)
    grad = torch.randn(n, c, h, w, dtype=torch.float64, device="cuda")

    def run(storage, dtype, backend):
        # Inputs rounded to `storage`, computed in `dtype`; detach + clone: fresh leaves
        # every run, so .grad is this run's alone.
        f = features.detach().to(storage).to(dtype).clone().requires_grad_()
        a = attention.detach().to(storage).to(dtype).clone().requires_grad_()
        _poison_allocator(2 * (f.nbytes + a.nbytes))
        out = psa_aggregate(f, a, mode, mask_size, softmax=softmax, normalization_factor=3.0, backend=backend)
        out.backward(grad.to(storage).to(dtype))
        return {"out": out, "grad features": f.grad, "grad attention": a.grad}

    # The reference sees the same rounded inputs, in float64: what is left to compare is
    # the kernel's float accumulation and the rounding of its results (relative to each
    # value), not the rounding of the inputs (relative to the sum of the terms, which
    # without a softmax is far larger than a half-precision result's last bit).
    tolerances = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}
    for dtype, tol in tolerances.items():
        reference = run(dtype, torch.float64, "torch")
        for name, got in run(dtype, dtype, "cupy").items():
            assert got.dtype == dtype, f"{dtype} {name}: returned {got.dtype}"
            assert not got.isnan().any(), f"{dtype} {name}: NaN left in the output"
            torch.testing.assert_close(got.double(), reference[name], rtol=tol, atol=tol,
                                       msg=lambda message: f"{dtype} {name}: {message}")


@gpu
def test_cuda_kernels_gradcheck():
    features, attention = inputs(1, 3, 3, 5, (3, 4), device="cuda")
    features.requires_grad_()
    attention.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda f, a: psa_aggregate(f, a, "distribute", (3, 4), backend="cupy"), (features, attention)
    )


def test_compact_attention_runs_on_the_dense_routes_only():
    features, attention = torch.randn(2, 3, 3, 4), torch.randn(2, 12, 3, 4)
    # Compact collect: channel t at position s is the weight of t in the output at s.
    expected = torch.bmm(features.view(2, 3, 12), attention.view(2, 12, 12).softmax(dim=1)).view(2, 3, 3, 4)
    torch.testing.assert_close(psa_aggregate(features, attention, "collect", compact=True), expected)
    transposed = attention.view(2, 12, 12).transpose(1, 2).reshape(2, 12, 3, 4)
    torch.testing.assert_close(psa_aggregate(features, transposed, "distribute", compact=True), expected)
    with pytest.raises(ValueError, match="compact attention runs on the dense routes"):
        psa_aggregate(features, attention, "collect", compact=True, backend="torch")
