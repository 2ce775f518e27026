"""Operators of PSANet: PSAMask (collect / distribute).

    from psanet_lite.ops import psa_mask, PSAMask, available_backends
"""

from psanet_lite.ops.psa_mask import PSAMask, available_backends, psa_mask
from psanet_lite.ops.aggregate import psa_aggregate

__all__ = ["PSAMask", "available_backends", "psa_aggregate", "psa_mask"]
