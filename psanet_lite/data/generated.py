"""What the procedural datasets share: samples drawn by code from (seed, split, index).

Nothing is stored: sample i of a split is drawn from numpy's
default_rng((seed, SPLITS[split], i)), so any item can be regenerated and two runs with the
same seed see the same data. A subclass sets ``name``, ``classes`` and ``palette`` and
draws one pair in ``_draw(rng)``.
"""
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from psanet_lite.data.labels import IGNORE_INDEX

SPLITS = {"train": 0, "val": 1, "test": 2}


class GeneratedDataset(Dataset):
    """``length`` generated (image, mask) pairs of one split.

    Args:
        split: 'train', 'val' or 'test'; each split draws from its own stream.
        length: number of images.
        size: image side in pixels.
        seed: base seed of the streams.
        transforms: paired transform applied to (image, mask), or None.

    Items: image tv_tensors.Image uint8 [3, size, size], mask tv_tensors.Mask int64
    [size, size] (before transforms).
    """

    name = "generated"
    classes: tuple = ()
    palette = None
    ignore_index = IGNORE_INDEX

    def __init__(self, split: str = "train", length: int = 2000, size: int = 128, seed: int = 0, transforms=None):
        if split not in SPLITS:
            raise ValueError(f"{self.name} split must be one of {tuple(SPLITS)}, got {split!r}")
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        self.split, self.length, self.size, self.seed = split, length, size, seed
        self.transforms = transforms
        self._draw(np.random.default_rng(0))  # reject bad sizes and options now

    def _draw(self, rng: np.random.Generator):
        """One pair: image uint8 [size, size, 3], label int64 [size, size] (numpy)."""
        raise NotImplementedError

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} images")
        return np.random.default_rng((self.seed, SPLITS[self.split], index))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.length

    def read(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """The untransformed pair: image uint8 [3, size, size], mask int64 [size, size]."""
        image, label = self._draw(self._rng(index))
        return (tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
                tv_tensors.Mask(torch.from_numpy(label)))

    def __getitem__(self, index: int):
        pair = self.read(index)
        return self.transforms(pair) if self.transforms is not None else pair

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.split!r}, {self.length} images of {self.size}px, seed {self.seed})"
