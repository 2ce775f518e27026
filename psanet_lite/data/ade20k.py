"""ADE20K as released for the SceneParsing challenge, 150 classes.

Layout, as published:
    root/ADEChallengeData2016/images/{training,validation}/ADE_*.jpg
    root/ADEChallengeData2016/annotations/{training,validation}/ADE_*.png
Annotation value 0 means "other / unlabelled" and k in 1..150 is class k-1:
like mmsegmentation's reduce_zero_label, 0 becomes the ignore index 255.
"""
from pathlib import Path

from psanet_lite.data.labelled_files import IGNORE_INDEX, LabelledFiles, sorted_files, table_from_pairs
from psanet_lite.data.labels import label_palette

CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain",
    "plant", "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house",
    "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock",
    "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop",
    "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent",
    "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)
SPLITS = {"training": "training", "validation": "validation", "train": "training", "val": "validation"}


class ADE20K(LabelledFiles):
    """ADE20K SceneParsing (ADEChallengeData2016) as (image, class mask) pairs.

    Args:
        root: the folder holding ADEChallengeData2016/ (or that folder itself).
        split: 'training' or 'validation' ('train' and 'val' are accepted).
        transforms: paired transform applied to (image, mask), or None.

    Example:
        >>> data = ADE20K("data/ade", "validation")  # doctest: +SKIP
        >>> len(data)  # doctest: +SKIP
        2000
    """

    classes = CLASSES
    # ADE20K has no official colours; the VOC bit rule gives 150 distinct ones.
    palette = label_palette(len(CLASSES) + 1)[1:]
    label_table = table_from_pairs({0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 151)}})
    label_format = "ADE20K annotation values (0 = unlabelled, 1..150 = classes)"

    def __init__(self, root, split: str = "training", transforms=None):
        if split not in SPLITS:
            raise ValueError(f"ADE20K split must be one of {sorted(SPLITS)}, got {split!r}")
        root = Path(root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        image_root = root / "images" / SPLITS[split]
        label_root = root / "annotations" / SPLITS[split]
        layout = f"ADEChallengeData2016/images/{SPLITS[split]}/*.jpg"
        images = sorted_files(image_root, "*.jpg", "ADE20K", layout)
        samples = [(image, label_root / (image.stem + ".png")) for image in images]
        super().__init__(samples, transforms)
