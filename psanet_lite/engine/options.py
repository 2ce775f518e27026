"""How to run a training (not what to learn: that is the Config).

This module imports nothing heavy: the command line reads its defaults from
TrainOptions before torch is loaded, so every default lives here only.
"""
import dataclasses
from dataclasses import dataclass

AMP_CHOICES = ("none", "bf16", "fp16")
DEVICES = ("cpu", "cuda")


@dataclass
class TrainOptions:
    """How to run (not what to learn: that is the Config).

    Attributes:
        data_root: folder of a real dataset (None for 'context').
        resume: None, 'auto' (latest readable checkpoint in work_dir) or a checkpoint path.
        device: 'cpu', 'cuda' or None (CUDA when available).
        amp: 'none', 'bf16' or 'fp16' (fp16 with a gradient scaler).
        seed: seeds model init, augmentation and data order.
        workers: data-loading processes per training process.
        deterministic: torch.use_deterministic_algorithms(True) (needed for
            bitwise-equal reruns on GPU; CPU runs are repeatable without it).
        log_interval: iterations between log records and progress-bar updates.
        keep_checkpoints: training checkpoints kept in work_dir/checkpoints (0: all).
        evaluate: evaluate on the val split every config.train.eval_interval iterations.
        progress: show the tqdm progress bars.

    Example:
        >>> TrainOptions(log_interval=0)
        Traceback (most recent call last):
        ...
        ValueError: log_interval must be an integer >= 1, got 0
    """

    data_root: str | None = None
    resume: str | None = None
    device: str | None = None
    amp: str = "none"
    seed: int = 0
    workers: int = 2
    deterministic: bool = False
    log_interval: int = 10
    keep_checkpoints: int = 3
    evaluate: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {AMP_CHOICES}, got {self.amp!r}")
        for name, low in (("seed", 0), ("workers", 0), ("log_interval", 1), ("keep_checkpoints", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def default(name: str):
    """The default of TrainOptions field ``name`` (the command line's defaults).

    Example:
        >>> default("workers")
        2
    """
    return next(f.default for f in dataclasses.fields(TrainOptions) if f.name == name)
