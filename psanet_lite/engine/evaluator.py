"""Evaluate a model on a dataset split: predictions at the labels' own
resolution, accumulated into one confusion matrix over all processes."""
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from psanet_lite.data.transforms import build_eval_transforms
from psanet_lite.engine.distributed import sum_over_processes
from psanet_lite.engine.inference import MS_RATIOS, segment
from psanet_lite.engine.metrics import confusion_matrix, segmentation_metrics


class _EvalSamples(Dataset):
    """(normalised, test-resized image [3, h, w], label at its original size [H, W])."""

    def __init__(self, dataset, transform, indices):
        self.dataset, self.transform, self.indices = dataset, transform, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        image, mask = self.dataset.read(self.indices[i])
        return self.transform(image), mask


def evaluate(model, dataset, config, device=torch.device("cpu"), ms_flip: bool = False,
             rank: int = 0, world_size: int = 1, workers: int = 0, progress: bool = False) -> dict:
    """mmsegmentation's metrics of ``model`` on ``dataset``.

    Each image is resized and normalised as config.data says, segmented as
    config.test says ('whole' or 'slide'; with ``ms_flip`` at config.test's
    ms_ratios and flip), and its scores are resized back to the label. With
    several processes each takes every world_size-th image and the confusion
    matrices are summed.

    Args:
        model: in eval mode afterwards (the caller restores train mode).
        dataset: has ``read(i)`` -> (image uint8 [3, H, W], mask [H, W]) and num_classes.
        config: Config (data and test sections are used).

    Returns:
        segmentation_metrics(...) of the summed confusion matrix, plus
        'confusion' (nested lists [K][K]).

    Example:
        >>> metrics = evaluate(model, build_dataset(cfg.data, "val"), cfg)  # doctest: +SKIP
        >>> metrics["mIoU"]  # doctest: +SKIP
        0.87
    """
    test = config.test
    samples = _EvalSamples(dataset, build_eval_transforms(config.data),
                           list(range(rank, len(dataset), world_size)))
    # its own generator: evaluating must not move the global one (a resumed run would diverge)
    loader = DataLoader(samples, batch_size=None, num_workers=workers, generator=torch.Generator())
    ratios = (test.ms_ratios or MS_RATIOS) if ms_flip else (1.0,)
    model.eval()
    confusion = torch.zeros(dataset.num_classes, dataset.num_classes, dtype=torch.int64, device=device)
    for image, mask in tqdm(loader, desc="eval", disable=not progress, leave=False):
        scores = segment(model, image[None].to(device), out_size=mask.shape, mode=test.mode,
                         crop_size=test.crop_size, stride=test.stride, ratios=ratios,
                         flip=ms_flip and test.flip)  # [1, K, H, W]
        confusion += confusion_matrix(scores.argmax(1)[0], mask.to(device), dataset.num_classes,
                                      dataset.ignore_index)
    confusion = sum_over_processes(confusion).cpu()
    return {**segmentation_metrics(confusion), "confusion": confusion.tolist()}
