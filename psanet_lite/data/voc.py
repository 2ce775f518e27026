"""PASCAL VOC 2012 with the SBD augmentation ("VOC aug"), 21 classes.

Layout, as published plus the SBD conversion most codebases use:
    root/VOCdevkit/VOC2012/JPEGImages/{id}.jpg
    root/VOCdevkit/VOC2012/SegmentationClassAug/{id}.png   (palette or gray,
        values 0..20 and 255 for object boundaries / unlabelled)
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt  (one id per line)
"""
from pathlib import Path

from psanet_lite.data.labelled_files import IGNORE_INDEX, LabelledFiles, table_from_pairs
from psanet_lite.data.labels import label_palette

CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


class VOCAug(LabelledFiles):
    """VOC 2012 + SBD as (image, class mask) pairs, listed by a split file.

    Args:
        root: the folder holding VOCdevkit/ (or VOCdevkit/VOC2012 itself).
        split: name of a file in ImageSets/Segmentation ('train', 'val', 'trainaug', ...).
        transforms: paired transform applied to (image, mask), or None.
        label_dir: the label folder; 'SegmentationClass' reads the original VOC labels.

    Example:
        >>> data = VOCAug("data/voc", "trainaug")  # doctest: +SKIP
        >>> len(data)  # doctest: +SKIP
        10582
    """

    classes = CLASSES
    palette = label_palette(len(CLASSES))
    label_table = table_from_pairs({**{k: k for k in range(21)}, IGNORE_INDEX: IGNORE_INDEX})
    label_format = "VOC class indices (0..20, or 255 for unlabelled)"

    def __init__(self, root, split: str = "train", transforms=None, label_dir: str = "SegmentationClassAug"):
        root = Path(root)
        if (root / "VOCdevkit").is_dir():
            root = root / "VOCdevkit"
        if (root / "VOC2012").is_dir():
            root = root / "VOC2012"
        split_dir = root / "ImageSets" / "Segmentation"
        split_file = split_dir / f"{split}.txt"
        if not split_file.is_file():
            known = sorted(p.stem for p in split_dir.glob("*.txt")) if split_dir.is_dir() else []
            raise FileNotFoundError(
                f"VOC split file {split_file} does not exist (split files found: {known or 'none'})"
            )
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"VOC split file {split_file} lists no image ids")
        samples = [(root / "JPEGImages" / f"{i}.jpg", root / label_dir / f"{i}.png") for i in ids]
        super().__init__(samples, transforms)
