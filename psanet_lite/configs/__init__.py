"""Experiment configurations: named presets (every published PSANet row + the book's model).

    from psanet_lite.configs import names, get_config
    cfg = get_config("psanet_r50-d8_512x1024_40k_cityscapes")
    cfg.published.miou                      # 77.63
    small = cfg.replace(num_classes=5)      # a modified copy
"""

import difflib

from psanet_lite.configs.overrides import parse_overrides
from psanet_lite.configs.presets import PRESETS
from psanet_lite.configs.schema import (
    Config,
    DataConfig,
    ModelConfig,
    PublishedResult,
    TestConfig,
    TrainConfig,
)


def names():
    """Names of all presets, published rows first (in the table's order), then the book's.

    >>> names()[0], names()[-1]
    ('psanet_r50-d8_512x1024_40k_cityscapes', 'psanet_lite_markers')
    """
    return list(PRESETS)


def get_config(name, **overrides):
    """A fresh copy of the preset `name`, with optional overrides (see Config.replace).

    Raises ValueError naming the known presets when `name` is not one, with the
    closest names (a typo, '_' for '-') suggested first.

    >>> get_config("psanet_r50-d8_512x512_80k_ade20k").model.mask_size
    (66, 66)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a preset name (str), got {type(name).__name__}")
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.8)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown preset {name!r}; {hint}known presets: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)


__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "PublishedResult",
    "TestConfig",
    "TrainConfig",
    "get_config",
    "names",
    "parse_overrides",
]
