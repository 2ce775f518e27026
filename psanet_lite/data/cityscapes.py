"""Cityscapes (fine annotations), 19 evaluation classes.

Layout, as published:
    root/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png
    root/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png
The labelIds files store the 34 label ids (0..33); training uses the official
19 train ids and every other id becomes the ignore index 255.
"""
from pathlib import Path

import numpy as np
from torchvision.datasets import Cityscapes as TorchvisionCityscapes

from psanet_lite.data.labelled_files import IGNORE_INDEX, LabelledFiles, sorted_files, table_from_pairs

# torchvision carries the official label table (id, train_id, colour); train_id
# 255 or -1 marks the ids left out of the 19-class evaluation.
_EVALUATED = sorted(
    (c for c in TorchvisionCityscapes.classes if 0 <= c.train_id < IGNORE_INDEX),
    key=lambda c: c.train_id,
)
SPLITS = ("train", "val", "test")


def _label_table() -> np.ndarray:
    pairs = {
        c.id: (c.train_id if 0 <= c.train_id < IGNORE_INDEX else IGNORE_INDEX)
        for c in TorchvisionCityscapes.classes
        if c.id >= 0
    }
    return table_from_pairs(pairs)


class Cityscapes(LabelledFiles):
    """Cityscapes fine split as (image, train-id mask) pairs.

    Files are listed in sorted order (torchvision's own Cityscapes class lists
    them in os.listdir order, which differs between file systems; a resumed
    run needs the same order).

    Args:
        root: the folder holding leftImg8bit/ and gtFine/.
        split: 'train', 'val' or 'test'.
        transforms: paired transform applied to (image, mask), or None.

    Example:
        >>> data = Cityscapes("data/cityscapes", "val")  # doctest: +SKIP
        >>> image, mask = data[0]  # doctest: +SKIP
        >>> image.shape, mask.shape  # doctest: +SKIP
        (torch.Size([3, 1024, 2048]), torch.Size([1024, 2048]))
    """

    classes = tuple(c.name for c in _EVALUATED)
    palette = np.array([c.color for c in _EVALUATED], dtype=np.uint8)
    label_table = _label_table()
    label_format = "Cityscapes label ids (0..33)"

    def __init__(self, root, split: str = "train", transforms=None):
        if split not in SPLITS:
            raise ValueError(f"Cityscapes split must be one of {SPLITS}, got {split!r}")
        root = Path(root)
        image_root = root / "leftImg8bit" / split
        label_root = root / "gtFine" / split
        layout = f"root/leftImg8bit/{split}/<city>/ and root/gtFine/{split}/<city>/"
        images = sorted_files(image_root, "*/*_leftImg8bit.png", "Cityscapes", layout)
        if not label_root.is_dir():
            raise FileNotFoundError(f"Cityscapes folder {label_root} does not exist (expected {layout})")
        samples = [
            (
                image,
                label_root
                / image.parent.name
                / image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"),
            )
            for image in images
        ]
        super().__init__(samples, transforms)
