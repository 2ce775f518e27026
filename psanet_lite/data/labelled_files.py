"""The common part of the real datasets: (image file, label file) pairs whose
raw label values are mapped to class indices through a lookup table."""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from psanet_lite.data.files import check_same_size, read_image, read_label
from psanet_lite.data.labels import IGNORE_INDEX


class LabelledFiles(Dataset):
    """Image/label file pairs with a raw-value -> class-index table.

    Subclasses set ``classes``, ``palette`` ([num_classes, 3] uint8),
    ``label_table`` (a length-256 int array: class index, ``IGNORE_INDEX``, or
    -1 for a value the format never stores) and ``label_format`` (words for
    the error message), and pass their file pairs to ``__init__``.

    Each item is ``transforms((image, mask))`` with image a tv_tensors.Image
    uint8 [3, H, W] and mask a tv_tensors.Mask int64 [H, W] of class indices
    (or IGNORE_INDEX, 255); without transforms the pair is returned as read.
    """

    classes: tuple[str, ...] = ()
    palette: np.ndarray  # [num_classes, 3] uint8 RGB
    label_table: np.ndarray
    label_format: str = ""
    ignore_index = IGNORE_INDEX

    def __init__(self, samples: list[tuple[Path, Path]], transforms=None):
        for image_path, label_path in samples:
            if not image_path.is_file():
                raise FileNotFoundError(f"image {image_path} does not exist")
            if not label_path.is_file():
                raise FileNotFoundError(f"label {label_path} of image {image_path} does not exist")
        self.samples = samples
        self.transforms = transforms

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """The untransformed pair: image uint8 [3, H, W], mask int64 [H, W]."""
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        raw = read_label(label_path)  # [H, W]
        check_same_size(image, raw, image_path, label_path)
        mapped = np.full(raw.shape, -1, dtype=np.int64)
        in_table = (raw >= 0) & (raw < len(self.label_table))
        mapped[in_table] = self.label_table[raw[in_table]]
        if (mapped < 0).any():
            bad = np.unique(raw[mapped < 0])
            shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
            raise ValueError(
                f"label {label_path} holds value(s) {shown}, which are not "
                f"{self.label_format}"
            )
        return image, tv_tensors.Mask(torch.from_numpy(mapped))

    def __getitem__(self, index: int):
        pair = self.read(index)
        return self.transforms(pair) if self.transforms is not None else pair

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes} classes)"


def sorted_files(folder: Path, pattern: str, dataset: str, layout: str) -> list[Path]:
    """The files matching `pattern` in `folder`, sorted (a resumed run needs the same order).

    Raises FileNotFoundError naming the expected `layout` when the folder is missing,
    and the pattern when it holds no such file.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset} folder {folder} does not exist (expected {layout})")
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {pattern} files in {folder}")
    return files


def table_from_pairs(pairs: dict[int, int]) -> np.ndarray:
    """A length-256 lookup table: raw value -> class, -1 where not listed."""
    table = np.full(256, -1, dtype=np.int64)
    for raw, target in pairs.items():
        table[raw] = target
    return table
