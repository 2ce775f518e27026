"""psanet-lite's own checkpoint format: weights, the config that built them, and metadata.

One file, readable with torch.load(path, weights_only=True) (builtins and tensors only):

    {
      "format": "psanet-lite",            # identifies the file
      "format_version": 1,
      "model": {key: tensor},              # model.state_dict(), tensors on the CPU
      "config": {...},                     # Config.to_dict(); Config.from_dict reads it back
      "metadata": {"psanet_lite_version": str, "torch_version": str,
                   "date": ISO 8601 UTC str, "miou": float | None, ...},
      ...                                  # extra top-level entries, e.g. a trainer's
                                           # "optimizer" state and "iteration" for resuming
    }

Files are written with atomic_save, so an interrupted save never corrupts the last one.
"""

import datetime
from importlib import metadata as importlib_metadata

import torch

from psanet_lite.checkpoint.atomic import atomic_save
from psanet_lite.checkpoint.safe_load import safe_torch_load

FORMAT = "psanet-lite"
FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "model", "config", "metadata")


def _package_version():
    try:
        return importlib_metadata.version("psanet-lite")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def make_checkpoint(model, config, /, miou=None, metadata=None, **extra):
    """The checkpoint dict for `model` built from `config` (a Config).

    Args:
        miou: validation mIoU (%) to record, if known.
        metadata: more metadata entries (builtins only).
        **extra: more top-level entries (builtins and tensors only), e.g. optimizer=..., iteration=...

    >>> from psanet_lite import build_model, get_config
    >>> config = get_config("psanet_lite_context")
    >>> ckpt = make_checkpoint(build_model(config), config, miou=61.2)
    >>> ckpt["format"], ckpt["metadata"]["miou"]
    ('psanet-lite', 61.2)
    """
    clashing = sorted(set(extra) & set(_RESERVED))
    if clashing:
        raise ValueError(f"extra entries may not use the reserved names {clashing}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config.to_dict(),
        "metadata": {
            "psanet_lite_version": _package_version(),
            "torch_version": str(torch.__version__),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "miou": miou,
            **(metadata or {}),
        },
        **extra,
    }


def save_checkpoint(path, model, config, /, miou=None, metadata=None, **extra):
    """Write make_checkpoint(...) to `path` atomically; returns the checkpoint dict.

    Example:
        >>> from psanet_lite import build_model, get_config
        >>> config = get_config("psanet_lite_context")
        >>> save_checkpoint("runs/lite/best.pt", build_model(config), config, miou=61.2)["metadata"]["miou"]
        61.2
    """
    checkpoint = make_checkpoint(model, config, miou=miou, metadata=metadata, **extra)
    atomic_save(checkpoint, path)
    return checkpoint


def is_native_checkpoint(checkpoint):
    """True when `checkpoint` (a loaded dict) is in psanet-lite's format."""
    return isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT


def load_checkpoint(path, trust_pickle=False):
    """Read a psanet-lite checkpoint (weights_only unless trust_pickle) and check its format.

    Returns the checkpoint dict; build the model with
    psanet_lite.build_model(checkpoint=path) or Config.from_dict(ckpt["config"]).

    Raises ValueError for files in another format or a newer format version.
    """
    checkpoint = safe_torch_load(path, trust_pickle=trust_pickle)
    if not is_native_checkpoint(checkpoint):
        raise ValueError(
            f"{path} is not a psanet-lite checkpoint (no 'format': {FORMAT!r}); "
            "for mmsegmentation files use psanet_lite.checkpoint.load_mmseg"
        )
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {checkpoint['format_version']}; this psanet-lite reads up to {FORMAT_VERSION}"
        )
    return checkpoint
