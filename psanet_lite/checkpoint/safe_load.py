"""Read checkpoint files without running code from them.

torch.load unpickles, and unpickling can execute arbitrary code. Every loader in
psanet_lite reads with weights_only=True (tensors, dicts, lists, numbers, strings only);
a file that needs more fails with an error naming the explicit opt-in, trust_pickle=True,
to be used only for files from a source you trust.
"""

import os
import pickle

import torch


class UntrustedCheckpointError(ValueError):
    """The file holds objects that weights_only loading refuses to unpickle."""


def safe_torch_load(path, trust_pickle=False, map_location="cpu"):
    """torch.load(path) with weights_only unless `trust_pickle` is True.

    Raises FileNotFoundError for a missing file and UntrustedCheckpointError when the
    file needs full unpickling (the message says how to opt in).

    Example:
        >>> torch.save({"state_dict": {"weight": torch.ones(2)}}, "weights.pth")
        >>> safe_torch_load("weights.pth")["state_dict"]["weight"]
        tensor([1., 1.])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    if trust_pickle:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        lines = str(error).splitlines()
        reason = next((line.strip() for line in lines if "Unsupported global" in line), lines[0])
        raise UntrustedCheckpointError(
            f"{path} holds Python objects beyond tensors and builtins, which are not unpickled by "
            f"default (unpickling can run code). If you trust this file, pass trust_pickle=True. "
            f"torch said: {reason}"
        ) from None
