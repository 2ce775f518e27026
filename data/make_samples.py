"""Regenerate data/samples/: a few images of the generated datasets beside their labels.

    python data/make_samples.py   # writes data/samples/{context,markers}_val_{0..3}.png

Each PNG is the 128x128 image (left) and its label in the dataset's palette
(right: black background, red / green / blue objects for the three cue or marker colours).
"""
from pathlib import Path

import numpy as np
from PIL import Image

from psanet_lite.data import ContextDataset, MarkerDataset
from psanet_lite.viz.palette import colorize_labels

HERE = Path(__file__).resolve().parent


def main(count: int = 4, out_dir: Path = HERE / "samples") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, kind in (("context", ContextDataset), ("markers", MarkerDataset)):
        _write(kind("val", length=count), name, out_dir)


def _write(dataset, name: str, out_dir: Path) -> None:
    for index in range(len(dataset)):
        image, mask = dataset.read(index)
        labels = colorize_labels(mask.numpy(), dataset.palette)
        gap = np.full((image.shape[1], 4, 3), 255, dtype=np.uint8)
        side_by_side = np.concatenate([image.permute(1, 2, 0).numpy(), gap, labels], axis=1)
        path = out_dir / f"{name}_val_{index}.png"
        Image.fromarray(side_by_side).save(path, optimize=True)
        print(path)


if __name__ == "__main__":
    main()
