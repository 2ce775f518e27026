"""The training loss: cross-entropy on the main logits plus a weighted
cross-entropy on the auxiliary (stage-3 FCN) logits."""
import torch
import torch.nn.functional as F

from psanet_lite.data.labelled_files import IGNORE_INDEX


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-pixel cross-entropy averaged over all pixels, ignored ones counting 0.

    mmsegmentation's CrossEntropyLoss (avg_non_ignore=False) divides by every
    pixel, not only the labelled ones; so does this. It also makes the mean over
    processes of equal-sized crops the mean over the global batch.

    Args:
        logits: [N, K, H, W]; target: [N, H, W] int64 with ``ignore_index`` allowed.

    Example:
        >>> logits = torch.zeros(1, 2, 1, 2)
        >>> round(pixel_cross_entropy(logits, torch.tensor([[[0, 255]]])).item(), 4)  # log(2) / 2
        0.3466
    """
    losses = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none")  # [N, H, W]
    return losses.mean()


def segmentation_loss(output, target: torch.Tensor, aux_weight: float = 0.4,
                      ignore_index: int = IGNORE_INDEX) -> dict:
    """Loss of PSANet's train-mode output (PSANetOutput(out, aux), aux may be None).

    Returns {'loss': total, 'loss_main': ..., 'loss_aux': ... (when aux exists)}.

    Example:
        >>> from psanet_lite.models import PSANetOutput
        >>> out = PSANetOutput(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))
        >>> parts = segmentation_loss(out, torch.zeros(1, 2, 2, dtype=torch.long))
        >>> round(parts["loss"].item(), 4)  # (1 + 0.4) * log(2)
        0.9704
    """
    parts = {"loss_main": pixel_cross_entropy(output.out, target, ignore_index)}
    total = parts["loss_main"]
    if output.aux is not None and aux_weight:
        parts["loss_aux"] = pixel_cross_entropy(output.aux, target, ignore_index)
        total = total + aux_weight * parts["loss_aux"]
    parts["loss"] = total
    return parts
