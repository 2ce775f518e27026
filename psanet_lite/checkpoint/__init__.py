"""Checkpoints: mmsegmentation's published format, psanet-lite's own format, safe reading.

    from psanet_lite.checkpoint import load_mmseg, export_mmseg           # mmsegmentation files
    from psanet_lite.checkpoint import save_checkpoint, load_checkpoint   # our format
    from psanet_lite.checkpoint import atomic_save, load_backbone_weights
"""

from psanet_lite.checkpoint.atomic import atomic_save, remove_temporaries
from psanet_lite.checkpoint.mismatch import CheckpointMismatchError, check_state_dict
from psanet_lite.checkpoint.mmseg import export_mmseg, load_mmseg, mmseg_key_map
from psanet_lite.checkpoint.native import (
    is_native_checkpoint,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from psanet_lite.checkpoint.pretrained import load_backbone_weights
from psanet_lite.checkpoint.safe_load import CheckpointReadError, UntrustedCheckpointError, safe_torch_load

__all__ = [
    "CheckpointMismatchError",
    "CheckpointReadError",
    "UntrustedCheckpointError",
    "atomic_save",
    "check_state_dict",
    "export_mmseg",
    "is_native_checkpoint",
    "load_backbone_weights",
    "load_checkpoint",
    "load_mmseg",
    "make_checkpoint",
    "mmseg_key_map",
    "remove_temporaries",
    "safe_torch_load",
    "save_checkpoint",
]
