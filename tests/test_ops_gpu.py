"""The CuPy kernel of PSAMask against the torch backend, on a CUDA device."""

import pytest
import torch

from psanet_lite.ops import available_backends, cupy_runtime, psa_mask

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHAPES = [  # (N, H, W, mh, mw)
    (2, 5, 7, 9, 13),  # odd, exactly over-completed
    (3, 6, 4, 4, 6),  # even, smaller than the map
    (1, 4, 4, 10, 12),  # even, larger than (7, 7)
    (2, 9, 11, 5, 3),  # odd, smaller
    (2, 32, 32, 66, 66),  # the ADE20K configuration after the shrink
]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def cupy_kernels():
    ok, reason = cupy_runtime.cupy_status(torch.device("cuda"))
    if not ok:
        pytest.skip(f"CuPy does not work on this CUDA device: {reason}")
    from psanet_lite.ops import psa_mask_cupy

    return psa_mask_cupy


def _assert_matches(actual, expected):
    if actual.dtype in (torch.float32, torch.float64):
        assert torch.equal(actual, expected)
    else:  # data movement is exact here too; the stated tolerance is the contract
        torch.testing.assert_close(actual, expected, rtol=1e-3, atol=0)


def test_cupy_is_listed_and_default(cupy_kernels):
    assert "cupy" in available_backends("cuda")
    a = torch.randn(1, 9, 2, 2, device="cuda", requires_grad=True)
    assert "_PSAMaskCuPy" in type(psa_mask(a, "collect", 3).grad_fn).__name__


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-{}x{}-m{}x{}".format(*s))
def test_forward_and_backward_match_torch(cupy_kernels, shape, mode, dtype):
    n, height, width, mh, mw = shape
    a = torch.randn(n, mh * mw, height, width, device="cuda").to(dtype).requires_grad_()
    y_cupy = psa_mask(a, mode, (mh, mw), backend="cupy")
    y_torch = psa_mask(a, mode, (mh, mw), backend="torch")
    _assert_matches(y_cupy, y_torch)
    grad_y = torch.randn_like(y_torch)
    (grad_cupy,) = torch.autograd.grad(y_cupy, a, grad_y)
    (grad_torch,) = torch.autograd.grad(y_torch, a, grad_y)
    _assert_matches(grad_cupy, grad_torch)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "N{}-{}x{}-m{}x{}".format(*s))
def test_every_element_is_written(cupy_kernels, shape, mode, dtype):
    # Poison the buffers with NaN: an element the kernel skips (a zero it forgot) stays NaN.
    n, height, width, mh, mw = shape
    a = torch.randn(n, mh * mw, height, width, device="cuda").to(dtype)
    out = torch.full((n, height * width, height, width), float("nan"), device="cuda", dtype=dtype)
    cupy_kernels.psamask_forward_into(a, out, mode, mh, mw)
    assert torch.equal(out, psa_mask(a, mode, (mh, mw), backend="torch"))
    grad_y = torch.randn_like(out)
    grad_a = torch.full_like(a, float("nan"))
    cupy_kernels.psamask_backward_into(grad_y, grad_a, mode, mh, mw)
    a.requires_grad_()
    (expected,) = torch.autograd.grad(psa_mask(a, mode, (mh, mw), backend="torch"), a, grad_y)
    assert torch.equal(grad_a, expected)


@pytest.mark.parametrize("mode", ["collect", "distribute"])
def test_gradcheck(cupy_kernels, mode):
    a = torch.randn(2, 4 * 5, 3, 4, device="cuda", dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: psa_mask(t, mode, (4, 5), backend="cupy"), (a,))


def test_runs_on_torch_current_stream(cupy_kernels):
    a = torch.randn(2, 13 * 13, 7, 7, device="cuda")
    expected = psa_mask(a, "distribute", 13, backend="torch")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = psa_mask(a, "distribute", 13, backend="cupy")
        y_doubled = y * 2  # queued behind the kernel on the same stream
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(y_doubled, expected * 2)


def test_non_contiguous_input(cupy_kernels):
    a = torch.randn(2, 3, 4, 25, device="cuda").permute(0, 3, 1, 2)
    assert torch.equal(psa_mask(a, "collect", 5, backend="cupy"), psa_mask(a, "collect", 5, backend="torch"))


def test_output_buffer_on_another_device_is_refused(cupy_kernels):
    a = torch.randn(1, 9, 2, 2, device="cuda")
    with pytest.raises(ValueError, match="same device"):
        cupy_kernels.psamask_forward_into(a, torch.empty(1, 4, 2, 2), "collect", 3, 3)
    with pytest.raises(TypeError, match="same dtype"):
        cupy_kernels.psamask_forward_into(a, torch.empty(1, 4, 2, 2, device="cuda", dtype=torch.float64), "collect", 3, 3)
