"""Metrics with mmsegmentation's definitions, checked on cases worked out by hand."""
import math

import pytest
import torch

from psanet_lite.engine.metrics import confusion_matrix, segmentation_metrics


def test_confusion_matrix_rows_are_ground_truth_and_ignore_is_skipped():
    target = torch.tensor([[0, 0, 1], [2, 255, 1]])
    pred = torch.tensor([[0, 1, 1], [2, 0, 0]])
    assert confusion_matrix(pred, target, 3).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]


def test_metrics_by_hand():
    # 3 classes. target 0 0 0 0 1 1 2 2 (+ two ignored)
    #            pred   0 0 0 1 1 0 2 1
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 255, 255])
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 2, 1, 2, 2])
    m = segmentation_metrics(confusion_matrix(pred, target, 3))
    # class 0: inter 3, label 4, pred 4 -> IoU 3/5, Acc 3/4
    # class 1: inter 1, label 2, pred 3 -> IoU 1/4, Acc 1/2
    # class 2: inter 1, label 2, pred 1 -> IoU 1/2, Acc 1/2
    assert m["IoU"] == pytest.approx([3 / 5, 1 / 4, 1 / 2])
    assert m["Acc"] == pytest.approx([3 / 4, 1 / 2, 1 / 2])
    assert m["aAcc"] == pytest.approx(5 / 8)
    assert m["mIoU"] == pytest.approx((3 / 5 + 1 / 4 + 1 / 2) / 3)
    assert m["mAcc"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)


def test_absent_classes_are_nan_and_left_out_of_the_means():
    # class 2 never labelled and never predicted: IoU and Acc NaN, skipped.
    # class 1 predicted but never labelled: IoU 0 (counts), Acc NaN (skipped).
    target = torch.tensor([0, 0, 3, 3])
    pred = torch.tensor([0, 1, 3, 3])
    m = segmentation_metrics(confusion_matrix(pred, target, 4))
    assert math.isnan(m["IoU"][2]) and math.isnan(m["Acc"][2]) and math.isnan(m["Acc"][1])
    assert m["IoU"][1] == 0.0
    assert m["mIoU"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert m["mAcc"] == pytest.approx((1 / 2 + 1) / 2)


def test_confusion_matrices_add_up_over_images():
    a = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2)
    b = confusion_matrix(torch.tensor([1]), torch.tensor([1]), 2)
    both = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
    assert torch.equal(a + b, both)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="target values must lie in 0..1"):
        confusion_matrix(torch.zeros(2, dtype=torch.long), torch.tensor([0, 7]), 2)
    with pytest.raises(TypeError, match="integer"):
        confusion_matrix(torch.zeros(2), torch.zeros(2, dtype=torch.long), 2)
