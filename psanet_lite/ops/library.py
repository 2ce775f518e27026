"""PSAMask and the fused PSA aggregation as `torch.library` custom operators.

The backends (psa_mask_torch, psa_mask_cupy, aggregate_torch, aggregate_cupy) copy
through NumPy views, build index tables and launch CUDA kernels: Python that torch.compile and
torch.export cannot trace through. Registered as operators, they become one opaque
node each, described to the tracers by

  - a fake (meta) implementation: the output's shape and dtype from the inputs' alone;
  - an autograd formula: another operator, so the backward graph traces too.

    psanet_lite::psa_mask(x [N, mh*mw, H, W], mode, mh, mw, backend) -> [N, H*W, H, W]
    psanet_lite::psa_mask_backward(grad [N, H*W, H, W], mode, mh, mw, backend) -> [N, mh*mw, H, W]
    psanet_lite::psa_aggregate(features [N, C, H, W], attention [N, mh*mw, H, W],
                               mode, mh, mw, softmax, scale, backend) -> [N, C, H, W]
    psanet_lite::psa_aggregate_backward(grad, features, attention, ...) -> (dF, dA)
    psanet_lite::psa_aggregate_logits(features, reduced [N, Cu, H, W], weight [mh*mw, Cu],
                                      mode, mh, mw, softmax, scale) -> [N, C, H, W]
    psanet_lite::psa_aggregate_logits_backward(grad, features, reduced, weight, ...) -> (dF, dU, dW)
    psanet_lite::psa_aggregate_logits_cupy(features, reduced, weight, mode, mh, mw, softmax, scale)
        -> (out [N, C, H, W], statistics [3, N, H*W] float32)
    psanet_lite::psa_aggregate_logits_cupy_backward(grad, features, reduced, weight, out,
                                                    statistics, ...) -> (dF, dU, dW)

PSAMask is linear, so the backward of its backward is PSAMask again. The aggregation's
backward reruns the backend's own forward and backward (its autograd.Function), which
recomputes the output once: the price of keeping one home for the backward formula. The
tensor-core route from the factors instead returns the softmax statistics its backward
needs beside the output, and its backward operator takes them: no forward runs twice.

Arguments are validated by the public functions (psanet_lite.ops.psa_mask,
psa_aggregate) before they call these operators. `softmax` is a string here
('reference', 'window' or 'none'): operator schemas have no Optional[str] literal.

    >>> x = torch.randn(1, 9, 2, 2)
    >>> torch.ops.psanet_lite.psa_mask(x, "collect", 3, 3, "torch").shape
    torch.Size([1, 4, 2, 2])
"""

import torch
from torch import Tensor

from psanet_lite.ops import aggregate_logits, aggregate_torch, psa_mask_torch

OP_BACKENDS = ("torch", "cupy")


@torch.library.custom_op("psanet_lite::psa_mask", mutates_args=())
def psa_mask(x: Tensor, mode: str, mh: int, mw: int, backend: str) -> Tensor:
    """PSAMask of validated x [N, mh*mw, H, W] with backend 'torch' or 'cupy' -> [N, H*W, H, W]."""
    with torch.no_grad():  # the operator's autograd formula is registered below
        if backend == "cupy":
            from psanet_lite.ops import psa_mask_cupy

            return psa_mask_cupy.psa_mask_cupy(x.contiguous(), mode, mh, mw)
        return psa_mask_torch.psa_mask_torch(x, mode, mh, mw)


@psa_mask.register_fake
def _psa_mask_fake(x, mode, mh, mw, backend):
    n, _, height, width = x.shape
    return x.new_empty(n, height * width, height, width)


@torch.library.custom_op("psanet_lite::psa_mask_backward", mutates_args=())
def psa_mask_backward(grad: Tensor, mode: str, mh: int, mw: int, backend: str) -> Tensor:
    """Gradient of psa_mask w.r.t. its input: grad [N, H*W, H, W] -> [N, mh*mw, H, W].

    Every entry of the input lands in at most one place of the output, so the gradient
    gathers it back from there (0 for mask cells outside the map).
    """
    n, _, height, width = grad.shape
    if backend == "cupy":
        from psanet_lite.ops import psa_mask_cupy

        out = grad.new_empty(n, mh * mw, height, width)
        return psa_mask_cupy.psamask_backward_into(grad.contiguous(), out, mode, mh, mw)
    return psa_mask_torch.psa_mask_torch_backward(grad, mode, mh, mw)


@psa_mask_backward.register_fake
def _psa_mask_backward_fake(grad, mode, mh, mw, backend):
    n, _, height, width = grad.shape
    return grad.new_empty(n, mh * mw, height, width)


def _setup_psa_mask(ctx, inputs, output):
    _, ctx.mode, ctx.mh, ctx.mw, ctx.backend = inputs


def _psa_mask_grad(ctx, grad):
    return psa_mask_backward(grad, ctx.mode, ctx.mh, ctx.mw, ctx.backend), None, None, None, None


def _psa_mask_backward_grad(ctx, grad):
    # psa_mask is linear: the adjoint of its adjoint is itself.
    return psa_mask(grad, ctx.mode, ctx.mh, ctx.mw, ctx.backend), None, None, None, None


psa_mask.register_autograd(_psa_mask_grad, setup_context=_setup_psa_mask)
psa_mask_backward.register_autograd(_psa_mask_backward_grad, setup_context=_setup_psa_mask)


def _aggregate_backend(backend):
    if backend == "cupy":
        from psanet_lite.ops import aggregate_cupy

        return aggregate_cupy.psa_aggregate_cupy
    return aggregate_torch.psa_aggregate_torch


def _softmax_argument(softmax):
    return None if softmax == "none" else softmax


@torch.library.custom_op("psanet_lite::psa_aggregate", mutates_args=())
def psa_aggregate(features: Tensor, attention: Tensor, mode: str, mh: int, mw: int, softmax: str,
                  scale: float, backend: str) -> Tensor:
    """Fused aggregation (psanet_lite.ops.aggregate) of validated inputs -> [N, C, H, W]."""
    run = _aggregate_backend(backend)
    with torch.no_grad():
        return run(features, attention, mode, mh, mw, _softmax_argument(softmax), scale)


@psa_aggregate.register_fake
def _psa_aggregate_fake(features, attention, mode, mh, mw, softmax, scale, backend):
    return torch.empty_like(features)


def _recomputed_gradients(run, tensors, settings, grad):
    """Gradients of run(*tensors, *settings) for the output gradient `grad`, by rerunning it."""
    with torch.enable_grad():
        leaves = tuple(tensor.detach().requires_grad_() for tensor in tensors)
        return torch.autograd.grad(run(*leaves, *settings), leaves, grad)


def _register_recomputed_autograd(operator, backward_operator, tensor_count):
    """The autograd formula of `operator`: its first `tensor_count` inputs are the tensors,
    `backward_operator(grad, *tensors, *settings)` returns their gradients."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:tensor_count])
        ctx.settings = inputs[tensor_count:]

    def gradient(ctx, grad):
        return tuple(backward_operator(grad, *ctx.saved_tensors, *ctx.settings)) + (None,) * len(ctx.settings)

    operator.register_autograd(gradient, setup_context=setup)


@torch.library.custom_op("psanet_lite::psa_aggregate_backward", mutates_args=())
def psa_aggregate_backward(grad: Tensor, features: Tensor, attention: Tensor, mode: str, mh: int, mw: int,
                           softmax: str, scale: float, backend: str) -> tuple[Tensor, Tensor]:
    """Gradients (d features, d attention) of psa_aggregate for the output gradient `grad`."""
    settings = (mode, mh, mw, _softmax_argument(softmax), scale)
    return _recomputed_gradients(_aggregate_backend(backend), (features, attention), settings, grad)


@psa_aggregate_backward.register_fake
def _psa_aggregate_backward_fake(grad, features, attention, mode, mh, mw, softmax, scale, backend):
    return torch.empty_like(features), torch.empty_like(attention)


_register_recomputed_autograd(psa_aggregate, psa_aggregate_backward, 2)


@torch.library.custom_op("psanet_lite::psa_aggregate_logits", mutates_args=())
def psa_aggregate_logits(features: Tensor, reduced: Tensor, weight: Tensor, mode: str, mh: int, mw: int,
                         softmax: str, scale: float) -> Tensor:
    """Fused aggregation from the logits' factors (ops/aggregate_logits.py) -> [N, C, H, W]."""
    with torch.no_grad():
        return aggregate_logits.psa_aggregate_logits_torch(features, reduced, weight, mode, mh, mw,
                                                           _softmax_argument(softmax), scale)


@psa_aggregate_logits.register_fake
def _psa_aggregate_logits_fake(features, reduced, weight, mode, mh, mw, softmax, scale):
    return torch.empty_like(features)


@torch.library.custom_op("psanet_lite::psa_aggregate_logits_backward", mutates_args=())
def psa_aggregate_logits_backward(grad: Tensor, features: Tensor, reduced: Tensor, weight: Tensor, mode: str,
                                  mh: int, mw: int, softmax: str, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (d features, d reduced, d weight) of psa_aggregate_logits for `grad`."""
    settings = (mode, mh, mw, _softmax_argument(softmax), scale)
    run = aggregate_logits.psa_aggregate_logits_torch
    return _recomputed_gradients(run, (features, reduced, weight), settings, grad)


@psa_aggregate_logits_backward.register_fake
def _psa_aggregate_logits_backward_fake(grad, features, reduced, weight, mode, mh, mw, softmax, scale):
    return torch.empty_like(features), torch.empty_like(reduced), torch.empty_like(weight)


_register_recomputed_autograd(psa_aggregate_logits, psa_aggregate_logits_backward, 3)


@torch.library.custom_op("psanet_lite::psa_aggregate_logits_cupy", mutates_args=())
def psa_aggregate_logits_cupy(features: Tensor, reduced: Tensor, weight: Tensor, mode: str, mh: int, mw: int,
                              softmax: str, scale: float) -> tuple[Tensor, Tensor]:
    """The tensor-core route from the logits' factors (ops/aggregate_logits_cupy.py, 16-bit
    CUDA tensors) -> (out [N, C, H, W], statistics [3, N, H*W] float32 for the backward)."""
    from psanet_lite.ops import aggregate_logits_cupy

    return aggregate_logits_cupy.forward(features, reduced, weight, mode, mh, mw, _softmax_argument(softmax), scale)


@psa_aggregate_logits_cupy.register_fake
def _psa_aggregate_logits_cupy_fake(features, reduced, weight, mode, mh, mw, softmax, scale):
    n, _, height, width = features.shape
    return torch.empty_like(features), features.new_empty((3, n, height * width), dtype=torch.float32)


@torch.library.custom_op("psanet_lite::psa_aggregate_logits_cupy_backward", mutates_args=())
def psa_aggregate_logits_cupy_backward(grad: Tensor, features: Tensor, reduced: Tensor, weight: Tensor, out: Tensor,
                                       statistics: Tensor, mode: str, mh: int, mw: int, softmax: str,
                                       scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (d features, d reduced, d weight) of psa_aggregate_logits_cupy for the output gradient `grad`."""
    from psanet_lite.ops import aggregate_logits_cupy

    return aggregate_logits_cupy.backward(grad, features, reduced, weight, out, statistics, mode, mh, mw,
                                          _softmax_argument(softmax), scale)


@psa_aggregate_logits_cupy_backward.register_fake
def _psa_aggregate_logits_cupy_backward_fake(grad, features, reduced, weight, out, statistics, mode, mh, mw,
                                             softmax, scale):
    return torch.empty_like(features), torch.empty_like(reduced), torch.empty_like(weight)


def _setup_logits_cupy(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3], *output)  # features, reduced, weight, out, statistics
    ctx.settings = inputs[3:]
    ctx.mark_non_differentiable(output[1])


def _logits_cupy_gradient(ctx, grad, _grad_statistics):
    grads = psa_aggregate_logits_cupy_backward(grad.contiguous(), *ctx.saved_tensors, *ctx.settings)
    return tuple(grads) + (None,) * len(ctx.settings)


psa_aggregate_logits_cupy.register_autograd(_logits_cupy_gradient, setup_context=_setup_logits_cupy)
