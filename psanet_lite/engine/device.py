"""Which device a command or a training process runs on."""
import torch

from psanet_lite.engine.options import DEVICES


def pick_device(device: str | None = None, index: int = 0) -> torch.device:
    """'cpu', 'cuda' (GPU ``index``) or None (CUDA when available) as a torch.device.

    Raises ValueError when CUDA is asked for and torch sees no CUDA device.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device (use --device cpu)")
    return torch.device("cuda", index) if device == "cuda" else torch.device("cpu")
