"""Read checkpoint files without running code from them.

torch.load unpickles, and unpickling can execute arbitrary code. Every loader in
psanet_lite reads with weights_only=True (tensors, dicts, lists, numbers, strings only);
a file that needs more fails with an error naming the explicit opt-in (trust_pickle=True
in Python, --trust-pickle on the command line), to be used only for files from a source
you trust. A file that is not a checkpoint at all (empty, truncated, text, a folder)
fails with CheckpointReadError naming the file.
"""

import os
import pickle
import zipfile

import torch


class UntrustedCheckpointError(ValueError):
    """The file holds objects that weights_only loading refuses to unpickle."""


class CheckpointReadError(ValueError):
    """The file is not a readable torch checkpoint (empty, truncated, another format)."""


# torch.save writes a zip archive (b"PK"); files of torch < 1.6 are a pickle (protocol 2+: 0x80).
_TORCH_FILE_STARTS = (b"PK", b"\x80")

# What torch.load raises for a file that is not a whole checkpoint.
_UNREADABLE = (EOFError, RuntimeError, zipfile.BadZipFile, ValueError,
               UnicodeDecodeError, AttributeError, ImportError, IndexError, KeyError, TypeError)


def safe_torch_load(path, trust_pickle=False, map_location="cpu"):
    """torch.load(path) with weights_only unless `trust_pickle` is True.

    Raises FileNotFoundError for a missing file, CheckpointReadError for one that is
    not a whole checkpoint, and UntrustedCheckpointError when the file needs full
    unpickling (the message says how to opt in).

    Example:
        >>> torch.save({"state_dict": {"weight": torch.ones(2)}}, "weights.pth")
        >>> safe_torch_load("weights.pth")["state_dict"]["weight"]
        tensor([1., 1.])
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointReadError(f"{path} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f"{path} is empty (0 bytes), not a checkpoint")
    with open(path, "rb") as file:
        start = file.read(2)
    if not start.startswith(_TORCH_FILE_STARTS):
        raise CheckpointReadError(f"{path} is not a torch checkpoint (it starts with {start!r}, "
                                  "neither a zip archive nor a pickle)")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        reason = _blocked_global(str(error))
        if reason is None:
            raise CheckpointReadError(f"cannot read checkpoint {path}: {_first_line(error)}") from None
        raise UntrustedCheckpointError(
            f"{path} holds Python objects beyond tensors and builtins, which are not unpickled by "
            f"default (unpickling can run code). If you trust this file, pass --trust-pickle "
            f"(command line) or trust_pickle=True (Python). torch said: {reason}"
        ) from None
    except _UNREADABLE as error:
        raise CheckpointReadError(f"cannot read checkpoint {path} (truncated, or not a torch "
                                  f"checkpoint): {_first_line(error)}") from None


def _blocked_global(message: str) -> str | None:
    """The line of torch's weights_only error that names a refused global, if any
    (torch <= 2.5 says 'Unsupported global', later ones 'Unsupported GLOBAL').

    Example:
        >>> _blocked_global("Weights only load failed.\\nWeightsUnpickler error: Unsupported GLOBAL foo.Bar")
        'WeightsUnpickler error: Unsupported GLOBAL foo.Bar'
    """
    return next((line.strip() for line in message.splitlines() if "unsupported global" in line.lower()), None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0].split('. ')[0] if text else ''}"[:200]
