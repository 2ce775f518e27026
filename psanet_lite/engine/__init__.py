"""Training, evaluation and inference.

    from psanet_lite.engine import train, TrainOptions, evaluate, segment
    from psanet_lite.engine import confusion_matrix, segmentation_metrics

Each name is imported from its module on first use (the table below says
which), so that a light module such as engine.options loads without torch.
"""
import importlib

_HOMES = {
    "MS_RATIOS": "inference",
    "TrainOptions": "options",
    "TrainingInterrupted": "trainer",
    "accumulation_steps": "trainer",
    "confusion_matrix": "metrics",
    "evaluate": "evaluator",
    "marker_attention_shares": "attention_shares",
    "median_shares": "attention_shares",
    "segment": "inference",
    "seed_everything": "trainer",
    "segmentation_metrics": "metrics",
    "slide_inference": "inference",
    "train": "trainer",
    "whole_inference": "inference",
}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'psanet_lite.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"psanet_lite.engine.{_HOMES[name]}"), name)
