"""Segmentation metrics from a confusion matrix, with mmsegmentation's definitions.

For class k, with pixels whose ground truth is the ignore index left out:
    intersect_k = pixels labelled k and predicted k   (the diagonal)
    label_k     = pixels labelled k                   (row sum)
    pred_k      = pixels predicted k                  (column sum)
    IoU_k = intersect_k / (label_k + pred_k - intersect_k)
    Acc_k = intersect_k / label_k
    aAcc  = sum_k intersect_k / sum_k label_k
    mIoU, mAcc = means over classes that skip NaN
A class absent from both ground truth and prediction has IoU 0/0 = NaN, and a
class absent from the ground truth has Acc NaN; like mmsegmentation's
np.nanmean, the means skip them.
"""
import torch

from psanet_lite.data.labelled_files import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Count (ground truth, prediction) pairs.

    Args:
        pred: integer class predictions, any shape.
        target: integer labels of the same shape; ``ignore_index`` pixels are skipped.
        num_classes: K.

    Returns:
        int64 tensor [K, K]; entry [t, p] counts pixels labelled t and predicted p.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 255]), 2)
        tensor([[1, 0],
                [0, 1]])
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError(f"pred and target must be integer tensors, got {pred.dtype} and {target.dtype}")
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    for name, values in (("target", target), ("pred", pred)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} values must lie in 0..{num_classes - 1} (or be {ignore_index} in target), "
                f"got values from {values.min().item()} to {values.max().item()}"
            )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_metrics(confusion: torch.Tensor) -> dict:
    """aAcc, mIoU, mAcc and per-class IoU / Acc from a [K, K] confusion matrix.

    Returns a dict of fractions in [0, 1] (mmsegmentation prints them x100):
    'aAcc', 'mIoU', 'mAcc' (floats) and 'IoU', 'Acc' (lists of K floats, NaN
    where undefined).

    Example:
        >>> m = segmentation_metrics(torch.tensor([[2, 0], [1, 1]]))
        >>> round(m["mIoU"], 4), m["Acc"]
        (0.5833, [1.0, 0.5])
    """
    confusion = confusion.double()
    intersect = confusion.diagonal()
    label = confusion.sum(dim=1)
    pred = confusion.sum(dim=0)
    iou = intersect / (label + pred - intersect)  # 0/0 -> NaN
    acc = intersect / label
    return {
        "aAcc": (intersect.sum() / label.sum()).item(),
        "mIoU": torch.nanmean(iou).item(),
        "mAcc": torch.nanmean(acc).item(),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
    }
