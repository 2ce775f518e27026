"""PSAMask against its closed form, written here element by element, on every backend."""

import importlib
import random
import sys
import warnings

import numpy as np
import pytest
import torch
from benchmark_modules import load_benchmark

from psanet_lite.ops import PSAMask, available_backends, psa_mask
from psanet_lite.ops import cupy_runtime

backends = importlib.import_module("psanet_lite.ops.backends")


def _backend_cases():
    """(backend, device) pairs usable here: every backend on the device it runs on.

    The CPU always runs 'reference' and 'torch'; a CUDA device adds 'torch' there and
    'cupy' where CuPy works, so a GPU machine checks the kernels against the closed form.
    """
    cases = [("reference", "cpu"), ("torch", "cpu")]
    if torch.cuda.is_available():
        cases += [(name, "cuda") for name in available_backends("cuda") if name != "reference"]
    return cases


BACKEND_CASES = _backend_cases()
CASE_IDS = [f"{name}-{device}" for name, device in BACKEND_CASES]


def closed_form(a, mode, mh, mw):
    """Y[n, p, q] from the closed form, one element at a time ([N, HW, HW] numpy array).

    collect:    Y[p, q] = A[(ph-qh+hh)*mw + (pw-qw+hw), qh, qw]
    distribute: Y[p, q] = A[(qh-ph+hh)*mw + (qw-pw+hw), ph, pw]
    0 where the mask index falls outside 0..mh-1 / 0..mw-1.
    """
    a = a.numpy()
    n, _, height, width = a.shape
    hh, hw = (mh - 1) // 2, (mw - 1) // 2
    y = np.zeros((n, height * width, height * width), dtype=a.dtype)
    for p in range(height * width):
        ph, pw = divmod(p, width)
        for q in range(height * width):
            qh, qw = divmod(q, width)
            if mode == "collect":
                i, j, h, w = ph - qh + hh, pw - qw + hw, qh, qw
            else:
                i, j, h, w = qh - ph + hh, qw - pw + hw, ph, pw
            if 0 <= i < mh and 0 <= j < mw:
                y[:, p, q] = a[:, i * mw + j, h, w]
    return torch.from_numpy(y)


def _shapes():
    """(N, H, W, mh, mw): fixed cases covering each kind, then seeded random ones."""
    fixed = [
        (1, 4, 4, 7, 7),  # odd, square, exactly (2H-1, 2W-1)
        (3, 3, 5, 5, 9),  # non-square map, exactly over-completed
        (1, 5, 5, 3, 3),  # odd mask smaller than the map's over-completed size
        (3, 4, 6, 4, 4),  # even mask smaller (offsets -1..2)
        (1, 3, 4, 6, 8),  # even mask smaller than (5, 7) on one side, larger on the other
        (3, 2, 3, 6, 10),  # even mask larger than (3, 5)
        (1, 3, 3, 9, 11),  # odd mask larger than (5, 5)
        (3, 4, 2, 2, 5),  # mixed even/odd
        (1, 1, 1, 1, 1),  # a single position
        (2, 3, 4, 5, 5),  # covers the rows, not the columns though wider than the map
        (1, 2, 6, 3, 8),  # the same with an even mask (Cityscapes 512x1024's kind)
    ]
    rng = random.Random(20180908)  # ECCV 2018
    drawn = []
    for _ in range(8):
        height, width = rng.randint(1, 6), rng.randint(1, 6)
        drawn.append((rng.choice([1, 3]), height, width, rng.randint(1, 2 * height + 2), rng.randint(1, 2 * width + 2)))
    return fixed + drawn


SHAPES = _shapes()


@pytest.mark.parametrize("backend, device", BACKEND_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-{}x{}-m{}x{}".format(*s))
def test_matches_closed_form(shape, dtype, mode, backend, device):
    n, height, width, mh, mw = shape
    generator = torch.Generator().manual_seed(hash(shape) % 2**31)
    a = torch.randn(n, mh * mw, height, width, generator=generator, dtype=dtype)
    y = psa_mask(a.to(device), mode, (mh, mw), backend=backend)
    assert y.shape == (n, height * width, height, width)
    assert y.dtype == dtype and y.device.type == device
    assert torch.equal(y.cpu().view(n, height * width, height * width), closed_form(a, mode, mh, mw))


@pytest.mark.parametrize("backend, device", BACKEND_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_moved_bit_exact(dtype, backend, device):
    a = torch.randn(2, 4 * 6, 3, 5).to(dtype)
    y = psa_mask(a.to(device), "distribute", (4, 6), backend=backend).cpu()
    assert torch.equal(y.view(2, 15, 15), closed_form(a.double(), "distribute", 4, 6).to(dtype))


def test_even_mask_window_by_hand():
    # A 1x5 map with a 1x4 mask: hw = (4-1)//2 = 1, so cell j reaches offset j-1 (-1..2).
    a = torch.arange(1.0, 1 + 4 * 5).view(1, 4, 1, 5)  # A[0, j, 0, w] = 1 + 5*j + w
    y = psa_mask(a, "collect", (1, 4)).view(5, 5)
    # Position s = 2 collects from t = 1, 2, 3, 4 through cells j = 0, 1, 2, 3.
    assert y[:, 2].tolist() == [0.0, 3.0, 8.0, 13.0, 18.0]
    # Position s = 0: cell 0 would reach t = -1 (off the map); cells 1..3 reach t = 0..2.
    assert y[:, 0].tolist() == [6.0, 11.0, 16.0, 0.0, 0.0]


@pytest.mark.parametrize("backend, device", BACKEND_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 4, 6), (1, 4, 3, 7, 5), (3, 2, 4, 9, 9)])
def test_distribute_is_collect_transposed(shape, backend, device):
    n, height, width, mh, mw = shape
    a = torch.randn(n, mh * mw, height, width, device=device)
    collect = psa_mask(a, "collect", (mh, mw), backend=backend).view(n, height * width, -1)
    distribute = psa_mask(a, "distribute", (mh, mw), backend=backend).view(n, height * width, -1)
    assert torch.equal(distribute, collect.transpose(1, 2))


def test_over_completed_mask_writes_every_entry():
    a = torch.rand(2, 5 * 7, 3, 4) + 1.0  # strictly positive weights
    for mode in ("collect", "distribute"):
        assert bool((psa_mask(a, mode) > 0).all())


@pytest.mark.parametrize("backend, device", BACKEND_CASES, ids=CASE_IDS)
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 3, 5), (1, 3, 3, 4, 4), (2, 2, 3, 3, 5)])
def test_gradcheck(shape, mode, backend, device):
    n, height, width, mh, mw = shape
    a = torch.randn(n, mh * mw, height, width, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: psa_mask(t, mode, (mh, mw), backend=backend), (a,))


def test_non_contiguous_input():
    a = torch.randn(2, 3, 4, 25).permute(0, 3, 1, 2)  # [2, 25, 3, 4], channels-last-like strides
    assert not a.is_contiguous()
    expected = closed_form(a.contiguous(), "collect", 5, 5)
    for backend, device in BACKEND_CASES:
        y = psa_mask(a.to(device), "collect", 5, backend=backend).cpu()
        assert torch.equal(y.view(2, 12, 12), expected), f"{backend} on {device}"


def test_mask_size_forms_agree():
    a = torch.randn(1, 5 * 5, 3, 3)
    expected = psa_mask(a, "collect", (5, 5))
    assert torch.equal(psa_mask(a, "collect", 5), expected)
    assert torch.equal(psa_mask(a, "collect", [5, 5]), expected)
    assert torch.equal(psa_mask(a, "collect", None), expected)  # (2*3-1, 2*3-1)
    assert torch.equal(psa_mask(a, "collect", np.int64(5)), expected)


def test_module_matches_function():
    a = torch.randn(2, 4 * 6, 3, 5)
    module = PSAMask("distribute", (4, 6), backend="torch")
    assert torch.equal(module(a), psa_mask(a, "distribute", (4, 6)))
    assert "distribute" in repr(module) and "(4, 6)" in repr(module)


BAD_INPUTS = [
    # (exception, words the message must contain, callable)
    (ValueError, ["4 dimensions", "3"], lambda: psa_mask(torch.randn(25, 3, 3), "collect", 5)),
    (ValueError, ["25 channels", "24"], lambda: psa_mask(torch.randn(1, 24, 3, 3), "collect", 5)),
    (ValueError, ["25 channels", "9"], lambda: psa_mask(torch.randn(1, 9, 3, 3), "collect")),
    (ValueError, ["collect", "'gather'"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "gather", 3)),
    (ValueError, ["collect", "'gather'"], lambda: PSAMask("gather", 3)),
    (ValueError, ["pair", "length 3"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", (3, 3, 1))),
    (TypeError, ["int", "2.5"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", 2.5)),
    (TypeError, ["int", "'3'"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", ("3", 3))),
    (TypeError, ["bool"], lambda: psa_mask(torch.randn(1, 1, 2, 2), "collect", True)),
    (ValueError, ["positive", "0"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", (0, 3))),
    (ValueError, ["positive", "-3"], lambda: PSAMask("collect", -3)),
    (TypeError, ["floating-point", "torch.int64"], lambda: psa_mask(torch.ones(1, 9, 2, 2, dtype=torch.long), "collect", 3)),
    (TypeError, ["floating-point", "torch.bool"], lambda: psa_mask(torch.ones(1, 9, 2, 2, dtype=torch.bool), "collect", 3)),
    (TypeError, ["torch.Tensor", "ndarray"], lambda: psa_mask(np.zeros((1, 9, 2, 2)), "collect", 3)),
    (ValueError, ["'torch'", "'triton'"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", 3, backend="triton")),
    (ValueError, ["'torch'", "'triton'"], lambda: PSAMask("collect", 3, backend="triton")),
    (ValueError, ["CUDA tensor", "cpu"], lambda: psa_mask(torch.randn(1, 9, 2, 2), "collect", 3, backend="cupy")),
]


@pytest.mark.parametrize("error, words, call", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_is_explained(error, words, call):
    with pytest.raises(error) as caught:
        call()
    for word in words:
        assert word in str(caught.value), f"{word!r} not in {caught.value}"


def test_cpu_backends_listed():
    assert available_backends("cpu") == ["reference", "torch"]


@pytest.fixture
def fresh_cupy_probe(monkeypatch):
    """Forget the cached probe results (and the warn-once flag) around a test."""
    cupy_runtime._probe.cache_clear()
    monkeypatch.setattr(backends, "_warned_cupy_unusable", False)
    yield
    cupy_runtime._probe.cache_clear()


def test_missing_cupy_is_reported_not_raised(fresh_cupy_probe, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    ok, reason = cupy_runtime.cupy_status("cuda:0")
    assert not ok and "cannot be imported" in reason
    assert "cupy" not in available_backends("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where CUDA does not work")
def test_cupy_that_imports_but_cannot_allocate(fresh_cupy_probe):
    # The situation of a CPU-only machine with cupy-cuda12x installed: `import cupy`
    # succeeds, the first allocation fails. The probe must say so instead of raising.
    pytest.importorskip("cupy")
    ok, reason = cupy_runtime.cupy_status("cuda:0")
    assert not ok and "cannot allocate or launch" in reason
    assert "cupy" not in available_backends("cuda:0")


def test_unusable_cupy_warns_once_and_falls_back(fresh_cupy_probe, monkeypatch):
    monkeypatch.setattr(cupy_runtime, "cupy_status", lambda device: (False, "broken on purpose"))
    with pytest.warns(RuntimeWarning, match="broken on purpose"):
        assert not backends.cupy_usable(torch.device("cuda:0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not backends.cupy_usable(torch.device("cuda:0"))


def test_kernel_source_found():
    path = cupy_runtime.kernel_path("psamask.cu")
    assert path.is_file() and "psamask_forward" in path.read_text()
    with pytest.raises(FileNotFoundError, match="no_such_kernel.cu"):
        cupy_runtime.kernel_path("no_such_kernel.cu")


def test_torch_backend_runs_shape_only_on_the_meta_device():
    # FLOP counting builds models on the meta device; the index map must not read data there.
    x = torch.randn(2, 9 * 7, 5, 6, device="meta")
    for mode in ("collect", "distribute"):
        y = psa_mask(x, mode, (9, 7), backend="torch")
        assert y.device.type == "meta" and y.shape == (2, 30, 5, 6)



def _allocated_bytes(fn):
    """Peak bytes of CPU tensors alive during fn(): the benchmarks' own measure (benchmarks/timing.py)."""
    return load_benchmark("timing").cpu_peak_bytes(fn)

@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", [(2, 6, 8, 11, 15), (2, 6, 8, 7, 9)], ids=["covering", "partial"])
def test_torch_backend_keeps_no_index_table(shape, mode):
    # Before issue 21 the torch backend cached int64 index tables of 24-32 bytes per
    # written entry (forward and backward orders): 6-8 times the float32 matrix itself.
    # Now each pass allocates its result and nothing else.
    n, height, width, mh, mw = shape
    hw = height * width
    x = torch.randn(n, mh * mw, height, width)
    grad = torch.randn(n, hw, height, width)
    matrix_bytes, input_bytes = grad.nbytes, x.nbytes
    assert _allocated_bytes(lambda: psa_mask(x, mode, (mh, mw), backend="torch")) == matrix_bytes
    backward = _allocated_bytes(lambda: torch.ops.psanet_lite.psa_mask_backward(grad, mode, mh, mw, "torch"))
    assert backward == input_bytes


@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5, 7), (1, 5, 6, 3, 3), (2, 4, 4, 4, 6)], ids=str)
def test_torch_backend_copies_of_other_devices_run_on_the_cpu(shape, mode, monkeypatch):
    # On a GPU the window copies are torch views with positive strides and aten flip.out;
    # running that path on the CPU checks it on machines without a GPU.
    psa_mask_torch = importlib.import_module("psanet_lite.ops.psa_mask_torch")
    monkeypatch.setattr(psa_mask_torch, "_copy_numpy", psa_mask_torch._copy_torch)
    n, height, width, mh, mw = shape
    a = torch.randn(n, mh * mw, height, width, dtype=torch.float64, requires_grad=True)
    y = psa_mask(a, mode, (mh, mw), backend="torch")
    assert torch.equal(y.detach().view(n, height * width, -1), closed_form(a.detach(), mode, mh, mw))
    grad = torch.randn_like(y)
    (expected,) = torch.autograd.grad(psa_mask(a, mode, (mh, mw), backend="reference"), a, grad)
    assert torch.equal(torch.autograd.grad(y, a, grad)[0], expected)
