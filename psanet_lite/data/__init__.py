"""Datasets and the paired transforms of the training pipeline.

    from psanet_lite.data import build_dataset, Cityscapes, ADE20K, VOCAug, ContextDataset, MarkerDataset
    train = build_dataset(cfg.data, "train", root="data/cityscapes",
                          transforms=build_train_transforms(cfg.data))

Every dataset yields (tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask int64
[H, W]) before transforms, has ``classes``, ``palette`` ([K, 3] uint8),
``num_classes`` and ``ignore_index`` (IGNORE_INDEX = 255, from data/labels.py, the
home of label conventions and palettes), and ``read(i)`` for the untransformed pair.
"""
from psanet_lite.data.ade20k import ADE20K
from psanet_lite.data.cityscapes import Cityscapes
from psanet_lite.data.context import ContextDataset
from psanet_lite.data.generated import GeneratedDataset
from psanet_lite.data.markers import MarkerDataset
from psanet_lite.data.transforms import build_eval_transforms, build_train_transforms
from psanet_lite.data.voc import VOCAug

# Per dataset name (DataConfig.dataset): class, the split names used for
# 'train' / 'val' / 'test', and whether label 0 is "other" (reduce_zero_label).
DATASETS = {
    "cityscapes": (Cityscapes, {"train": "train", "val": "val", "test": "test"}, False),
    "ade20k": (ADE20K, {"train": "training", "val": "validation"}, True),
    "voc12aug": (VOCAug, {"train": "trainaug", "val": "val"}, False),
    "context": (ContextDataset, {"train": "train", "val": "val", "test": "test"}, False),
    "markers": (MarkerDataset, {"train": "train", "val": "val", "test": "test"}, False),
}
CONTEXT_LENGTHS = {"train": 8000, "val": 500, "test": 500}


def build_dataset(data, split: str, root=None, transforms=None):
    """The dataset a DataConfig names, for split 'train', 'val' or 'test'.

    Args:
        data: DataConfig (``config.data``); its dataset, num_classes and
            reduce_zero_label must agree with the dataset's own conventions.
        split: 'train', 'val' or 'test' (mapped to the dataset's own names:
            ADE20K 'training'/'validation', VOC 'trainaug'/'val').
        root: the dataset folder (real datasets only; 'context' and 'markers' are generated).
        transforms: paired transform, e.g. build_train_transforms(data).

    Example:
        >>> from psanet_lite.configs import get_config
        >>> val = build_dataset(get_config("psanet_lite_context").data, "val")
        >>> len(val), val.num_classes
        (500, 4)
    """
    if data.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {data.dataset!r}; known: {sorted(DATASETS)}")
    kind, splits, reduce_zero_label = DATASETS[data.dataset]
    if split not in splits:
        raise ValueError(f"{data.dataset} has no {split!r} split; splits: {sorted(splits)}")
    if data.reduce_zero_label != reduce_zero_label:
        raise ValueError(
            f"data.reduce_zero_label is {data.reduce_zero_label} but {data.dataset} labels "
            f"{'are' if reduce_zero_label else 'are not'} read with label 0 as 'other'"
        )
    if issubclass(kind, GeneratedDataset):  # drawn by code, CONTEXT_LENGTHS long, no data root
        if root is not None:
            raise ValueError(f"the {data.dataset} dataset is generated; it takes no data root")
        dataset = kind(splits[split], length=CONTEXT_LENGTHS[split], size=data.crop_size[0],
                                 transforms=transforms)
    else:
        if root is None:
            raise ValueError(f"{data.dataset} needs a data root (the folder holding the dataset)")
        dataset = kind(root, splits[split], transforms=transforms)
    if dataset.num_classes != data.num_classes:
        raise ValueError(
            f"data.num_classes is {data.num_classes} but {data.dataset} has {dataset.num_classes} classes"
        )
    return dataset


__all__ = [
    "ADE20K",
    "Cityscapes",
    "ContextDataset",
    "DATASETS",
    "MarkerDataset",
    "VOCAug",
    "build_dataset",
    "build_eval_transforms",
    "build_train_transforms",
]
