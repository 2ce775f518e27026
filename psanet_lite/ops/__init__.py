"""Operators of PSANet: PSAMask (collect / distribute), the attention matrix, the aggregation.

    from psanet_lite.ops import psa_mask, psa_attention, psa_aggregate, available_backends

ops/backends.py chooses the implementation behind each of them.
"""

from psanet_lite.ops.aggregate import psa_aggregate
from psanet_lite.ops.attention import psa_attention
from psanet_lite.ops.backends import AGGREGATE_BACKENDS, PSA_MASK_BACKENDS, available_backends
from psanet_lite.ops.psa_mask import PSAMask, psa_mask, resolve_mask_size

__all__ = [
    "AGGREGATE_BACKENDS",
    "PSAMask",
    "PSA_MASK_BACKENDS",
    "available_backends",
    "psa_aggregate",
    "psa_attention",
    "psa_mask",
    "resolve_mask_size",
]
