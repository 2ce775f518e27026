"""The psanet_lite:: custom operators: opcheck, gradients, and the public functions that call them."""

import pytest
import torch
from torch.library import opcheck

from psanet_lite.ops import library, psa_aggregate, psa_mask
from psanet_lite.ops import available_backends

# (N, H, W, mh, mw): a mask covering the map, one that does not, an even mask.
SHAPES = [(2, 3, 4, 5, 7), (1, 5, 6, 3, 3), (2, 4, 4, 4, 4)]
MODES = ("collect", "distribute")


def _devices():
    devices = [("torch", "cpu")]
    if torch.cuda.is_available():
        devices += [(name, "cuda") for name in available_backends("cuda") if name in library.OP_BACKENDS]
    return devices


DEVICES = _devices()


def _inputs(n, height, width, mh, mw, device, channels=3):
    generator = torch.Generator().manual_seed(n * 1000 + height * 100 + width * 10 + mh)
    features = torch.randn(n, channels, height, width, dtype=torch.float64, generator=generator)
    attention = torch.randn(n, mh * mw, height, width, dtype=torch.float64, generator=generator)
    return features.to(device).requires_grad_(), attention.to(device).requires_grad_()


@pytest.mark.parametrize("backend,device", DEVICES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_opcheck_psa_mask_and_its_backward(shape, mode, backend, device):
    n, height, width, mh, mw = shape
    _, attention = _inputs(*shape, device)
    grad = torch.randn(n, height * width, height, width, dtype=torch.float64, device=device, requires_grad=True)
    opcheck(torch.ops.psanet_lite.psa_mask.default, (attention, mode, mh, mw, backend))
    opcheck(torch.ops.psanet_lite.psa_mask_backward.default, (grad, mode, mh, mw, backend))


# Every shape and mode once, each softmax twice (opcheck runs several traces per case).
AGGREGATE_CASES = [(shape, mode, ("reference", "window", "none")[(2 * k + m) % 3])
                   for k, shape in enumerate(SHAPES) for m, mode in enumerate(MODES)]


@pytest.mark.parametrize("backend,device", DEVICES)
@pytest.mark.parametrize("shape,mode,softmax", AGGREGATE_CASES)
def test_opcheck_psa_aggregate(shape, mode, softmax, backend, device):
    n, height, width, mh, mw = shape
    features, attention = _inputs(*shape, device)
    opcheck(torch.ops.psanet_lite.psa_aggregate.default, (features, attention, mode, mh, mw, softmax, 0.5, backend))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_psa_mask_gradients_through_the_operator(shape, mode):
    _, height, width, mh, mw = shape
    _, attention = _inputs(*shape, "cpu")
    assert torch.autograd.gradcheck(lambda a: psa_mask(a, mode, (mh, mw), backend="torch"), (attention,))
    # psa_mask is linear: its backward's backward (registered as psa_mask again) checks too.
    assert torch.autograd.gradgradcheck(lambda a: psa_mask(a, mode, (mh, mw), backend="torch"), (attention,))


@pytest.mark.parametrize("softmax", ["reference", "window", None])
@pytest.mark.parametrize("mode", MODES)
def test_psa_aggregate_operator_equals_the_dense_composition_with_gradients(mode, softmax):
    features, attention = _inputs(2, 3, 4, 5, 3, "cpu")
    dense = psa_aggregate(features, attention, mode, (5, 3), softmax=softmax, backend="dense")
    fused = psa_aggregate(features, attention, mode, (5, 3), softmax=softmax, backend="torch")
    grad = torch.randn_like(dense)
    dense_grads = torch.autograd.grad(dense, (features, attention), grad)
    fused_grads = torch.autograd.grad(fused, (features, attention), grad)
    torch.testing.assert_close(fused, dense)
    for got, expected in zip(fused_grads, dense_grads):
        torch.testing.assert_close(got, expected)


def test_public_functions_run_the_registered_operators():
    # psa_mask by default, psa_aggregate on its fused routes ('dense' is plain aten ops).
    features, attention = _inputs(1, 3, 4, 5, 7, "cpu")
    class Head(torch.nn.Module):
        def forward(self, f, a):
            return psa_mask(a, "collect", (5, 7)), psa_aggregate(f, a, "distribute", (5, 7), backend="torch")

    program = torch.export.export(Head(), (features.detach(), attention.detach()))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"psanet_lite.psa_mask.default", "psanet_lite.psa_aggregate.default"} <= targets
