"""The fused route from the logits' factors against the dense route, conv + psa_mask + softmax + bmm.

The dense side: the map by a 1x1 convolution of the reduced features with the weight
(torch.nn.functional.conv2d), then test_ops_aggregate's oracle, written from the
definition (psa_mask, the softmax over dim 1, torch.bmm).
"""

import pytest
import torch
import torch.nn.functional as F

from psanet_lite.ops import psa_aggregate
from psanet_lite.ops.aggregate_logits import psa_aggregate_logits_torch
from test_ops_aggregate import unfused


def dense(features, reduced, weight, mode, mask_size, softmax, normalization_factor):
    attention = F.conv2d(reduced, weight[:, :, None, None])                  # [N, mh*mw, H, W]
    return unfused(features, attention, mode, mask_size, softmax, normalization_factor)


def factors(n, c, cu, h, w, mh, mw, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c, h, w, generator=generator, dtype=torch.float64)
    reduced = torch.randn(n, cu, h, w, generator=generator, dtype=torch.float64)
    weight = 2 * torch.randn(mh * mw, cu, generator=generator, dtype=torch.float64)  # logits around +-3
    return features, reduced, weight


# (N, C, Cu, H, W, (mh, mw)): odd and even masks, smaller and larger than the map, non-square.
SHAPES = [
    (2, 3, 4, 4, 5, (3, 5)),
    (1, 2, 3, 3, 4, (4, 4)),
    (2, 3, 2, 3, 3, (5, 5)),
    (1, 2, 3, 4, 3, (9, 6)),
]


@pytest.mark.parametrize("softmax", ["reference", "window", None])
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_equals_the_dense_route_float64(shape, mode, softmax):
    n, c, cu, h, w, (mh, mw) = shape
    features, reduced, weight = (t.requires_grad_() for t in factors(n, c, cu, h, w, mh, mw))
    expected = dense(features, reduced, weight, mode, (mh, mw), softmax, 2.0)
    # through the public entry point, with chunks of two positions so that distribute's
    # online softmax really spans several chunks
    actual = psa_aggregate_logits_torch(features, reduced, weight, mode, mh, mw, softmax, 0.5,
                                        chunk_elements=2 * n * max(h * w, mh * mw))
    public = psa_aggregate(features, (reduced, weight), mode, (mh, mw), softmax, 2.0, backend="torch")
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(public, expected, rtol=0, atol=1e-12)
    grad = torch.randn_like(expected)
    for got, want in zip(torch.autograd.grad(actual, (features, reduced, weight), grad),
                         torch.autograd.grad(expected, (features, reduced, weight), grad)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("softmax", ["reference", "window"])
@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("mask", [(3, 3), (4, 2)], ids=str)
def test_gradcheck(mask, mode, softmax):
    mh, mw = mask
    inputs = tuple(t.requires_grad_() for t in factors(2, 2, 3, 3, 4, mh, mw, seed=1))

    def route(features, reduced, weight):
        return psa_aggregate_logits_torch(features, reduced, weight, mode, mh, mw, softmax, 0.5,
                                          chunk_elements=2 * 2 * 12)

    assert torch.autograd.gradcheck(route, inputs)


def test_a_convolution_weight_is_accepted_and_bad_factors_are_explained():
    features, reduced, weight = factors(1, 2, 3, 3, 3, 3, 3)
    as_conv = psa_aggregate(features, (reduced, weight[:, :, None, None]), "collect", 3, backend="torch")
    torch.testing.assert_close(as_conv, psa_aggregate(features, (reduced, weight), "collect", 3, backend="dense"))
    with pytest.raises(ValueError, match=r"\[mh\*mw, Cu\].*Cu = 3.*\(9, 4\)"):
        psa_aggregate(features, (reduced, torch.randn(9, 4, dtype=torch.float64)), "collect", 3)
    with pytest.raises(ValueError, match="mh\\*mw = 5\\*5 = 25.*got 9"):
        psa_aggregate(features, (reduced, weight), "collect", 5)
    with pytest.raises(ValueError, match="pair"):
        psa_aggregate(features, (reduced,), "collect", 3)
