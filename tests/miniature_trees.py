"""Miniature copies of the real datasets' trees: published folder layout, file names,
formats and label encodings, with a few small random images.

Used by the dataset tests (6 x 8 images) and by the end-to-end CLI tests (images big
enough for the network). Every builder returns the root to pass as --data-root.
"""
import numpy as np
from PIL import Image

H, W = 6, 8

# Official mapping (cityscapesScripts labels.py): labelId -> trainId.
CITYSCAPES_PAIRS = {7: 0, 8: 1, 11: 2, 26: 13, 33: 18, 0: 255, 1: 255, 14: 255, 29: 255, 30: 255}


def rgb(path, height=H, width=W, fmt=None, seed=0):
    """A random RGB image saved at ``path`` (format from the suffix unless ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def gray(path, values, mode="L"):
    """A single-channel label PNG holding ``values`` (an HxW array)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode=mode).save(path)


def palette_png(path, values):
    """A palette ('P') label PNG, the way VOC stores them: the pixels are class indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.asarray(values, dtype=np.uint8), mode="P")
    # VOC's colour map for the first entries; the stored values stay the indices
    picture.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [64, 64, 64] * 253)
    picture.save(path)


def labels(values, height=H, width=W):
    """An HxW label map cycling through ``values`` row by row."""
    return np.resize(np.asarray(values), height * width).reshape(height, width)


def blocks(values, height, width):
    """An HxW label map of vertical stripes, one per value (learnable, unlike ``labels``)."""
    columns = np.arange(width) * len(values) // width
    return np.broadcast_to(np.asarray(values)[columns], (height, width))


def cityscapes(root, split="train", cities=("zurich", "aachen"), size=(H, W), label_map=None):
    """leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png and gtFine/.../<stem>_gtFine_labelIds.png."""
    label_map = labels(list(CITYSCAPES_PAIRS), *size) if label_map is None else label_map
    for k, city in enumerate(cities):
        stem = f"{city}_000000_000019"
        rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", *size, seed=k)
        gray(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_map)
    return root


def ade20k(root, split="training", values=(0, 1, 2, 150), size=(H, W), label_map=None):
    """ADEChallengeData2016/images/<split>/ADE_train_00000001.jpg and annotations/<split>/...png."""
    base = root / "ADEChallengeData2016"
    prefix = "ADE_train" if split == "training" else "ADE_val"
    label_map = labels(values, *size) if label_map is None else label_map
    for i in (1, 2):
        rgb(base / "images" / split / f"{prefix}_{i:08d}.jpg", *size, fmt="JPEG", seed=i)
        gray(base / "annotations" / split / f"{prefix}_{i:08d}.png", label_map)
    return root


def voc(root, ids=("2007_000032", "2007_000039"), palette=True, values=(0, 15, 20, 255), size=(H, W),
        label_map=None):
    """VOCdevkit/VOC2012/JPEGImages, SegmentationClassAug and ImageSets/Segmentation/{train,val,trainaug}.txt."""
    base = root / "VOCdevkit" / "VOC2012"
    label_map = labels(values, *size) if label_map is None else label_map
    for k, i in enumerate(ids):
        rgb(base / "JPEGImages" / f"{i}.jpg", *size, fmt="JPEG", seed=k)
        (palette_png if palette else gray)(base / "SegmentationClassAug" / f"{i}.png", label_map)
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "trainaug"):
        (sets / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
