"""Training, evaluation and inference.

    from psanet_lite.engine import train, TrainOptions, evaluate, segment
    from psanet_lite.engine import confusion_matrix, segmentation_metrics
"""
from psanet_lite.engine.evaluator import evaluate
from psanet_lite.engine.inference import MS_RATIOS, segment, slide_inference, whole_inference
from psanet_lite.engine.metrics import confusion_matrix, segmentation_metrics
from psanet_lite.engine.trainer import TrainingInterrupted, TrainOptions, train

__all__ = [
    "MS_RATIOS",
    "TrainOptions",
    "TrainingInterrupted",
    "confusion_matrix",
    "evaluate",
    "segment",
    "segmentation_metrics",
    "slide_inference",
    "train",
    "whole_inference",
]
