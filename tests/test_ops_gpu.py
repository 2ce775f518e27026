"""The CuPy kernel of PSAMask against the torch backend, on a CUDA device.

Every instance of kernels/psamask.cu runs here: 2-, 4- and 8-byte elements (float16 and
bfloat16, float32, float64), 16-byte vectors (W a multiple of 16 bytes' worth) and single
elements (other W, or tensors off a 16-byte boundary), forward and backward, collect and
distribute, on maps and masks wider than one 32-wide tile. The index map itself is also
checked without a GPU (tests/test_kernels_psamask.py).
"""

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
    (1, 3, 40, 5, 75),  # 40 columns: a full and a partial tile, vectors in every dtype
    (2, 4, 49, 9, 97),  # Cityscapes 769x769's 49 columns: single elements, 97-row gradient slabs
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
    # PSAMask moves numbers: every dtype comes out bit for bit.
    assert actual.dtype == expected.dtype and torch.equal(actual, expected)


def test_cupy_is_listed_and_differentiable(cupy_kernels):
    # Which backend None picks on CUDA follows a measurement (ops/backends.py), not this test.
    assert "cupy" in available_backends("cuda")
    a = torch.randn(1, 9, 2, 2, device="cuda", dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(psa_mask(a, "collect", 3, backend="cupy").sum(), a)
    (expected,) = torch.autograd.grad(psa_mask(a, "collect", 3, backend="reference").sum(), a)
    assert torch.equal(grad, expected)


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
@pytest.mark.parametrize("shape", SHAPES[:3] + SHAPES[5:], ids=lambda s: "N{}-{}x{}-m{}x{}".format(*s))
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


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["collect", "distribute"])
def test_tensors_off_a_16_byte_boundary(cupy_kernels, mode, dtype):
    # W = 40 takes the 16-byte instances when aligned; a storage offset of one element
    # forces the single-element ones, on the same numbers.
    n, height, width, mh, mw = 1, 3, 40, 5, 75
    a = torch.randn(n, mh * mw, height, width, device="cuda").to(dtype)
    shifted = torch.empty(a.numel() + 1, device="cuda", dtype=dtype)[1:].view(a.shape).copy_(a)
    assert cupy_kernels.access_width([shifted], width) == 1 < cupy_kernels.access_width([a], width)
    out = torch.full((n * (height * width) ** 2 + 1,), float("nan"), device="cuda", dtype=dtype)
    out = out[1:].view(n, height * width, height, width)
    cupy_kernels.psamask_forward_into(shifted, out, mode, mh, mw)
    _assert_matches(out, psa_mask(a, mode, (mh, mw), backend="torch"))
    grad_a = torch.full((a.numel() + 1,), float("nan"), device="cuda", dtype=dtype)[1:].view(a.shape)
    cupy_kernels.psamask_backward_into(out, grad_a, mode, mh, mw)
    a.requires_grad_()
    (expected,) = torch.autograd.grad(psa_mask(a, mode, (mh, mw), backend="torch"), a, out)
    _assert_matches(grad_a, expected)


def test_offsets_beyond_2_to_the_31_elements(cupy_kernels):
    # 130 images of a 64x64 map: Y holds 130 * 4096^2 > 2^31 elements, so the last images'
    # slabs start past what a 32-bit offset reaches (the kernel keeps those 64-bit).
    n, height, width, mh, mw = 130, 64, 64, 3, 3
    if torch.cuda.get_device_properties(0).total_memory < 16 * 2**30:
        pytest.skip("needs 16 GiB of device memory")
    a = torch.randn(n, mh * mw, height, width, device="cuda", dtype=torch.float16)
    y = psa_mask(a, "distribute", (mh, mw), backend="cupy")
    assert y.numel() > 2**31
    _assert_matches(y[-2:], psa_mask(a[-2:], "distribute", (mh, mw), backend="torch"))
    grad = cupy_kernels.psamask_backward_into(y, torch.empty_like(a), "distribute", mh, mw)
    _assert_matches(grad[-2:], cupy_kernels.psamask_backward_into(y[-2:].contiguous(), torch.empty_like(a[-2:]),
                                                                   "distribute", mh, mw))
    del y, grad


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
