"""The real datasets on miniature trees with their published names, formats and encodings."""
import numpy as np
import pytest
import torch
from PIL import Image

from psanet_lite.configs import get_config
from psanet_lite.data import ADE20K, Cityscapes, VOCAug, build_dataset

H, W = 6, 8


def _rgb(path, height=H, width=W, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def _gray(path, values, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode=mode).save(path)


def _palette_png(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.asarray(values, dtype=np.uint8), mode="P")
    # VOC's colour map for the first entries; the stored values stay the indices
    picture.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [64, 64, 64] * 253)
    picture.save(path)


def _labels(values):
    """An HxW label map cycling through ``values``."""
    return np.resize(np.asarray(values), H * W).reshape(H, W)


# ---------------------------------------------------------------- Cityscapes

# Official mapping (cityscapesScripts labels.py): labelId -> trainId.
CITYSCAPES_PAIRS = {7: 0, 8: 1, 11: 2, 26: 13, 33: 18, 0: 255, 1: 255, 14: 255, 29: 255, 30: 255}


def _cityscapes(root, split="train", cities=("zurich", "aachen")):
    for city in cities:
        stem = f"{city}_000000_000019"
        _rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        _gray(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", _labels(list(CITYSCAPES_PAIRS)))
    return root


def test_cityscapes_reads_pairs_and_maps_label_ids_to_train_ids(tmp_path):
    data = Cityscapes(_cityscapes(tmp_path), "train")
    assert len(data) == 2 and data.num_classes == 19
    assert [p.parent.name for p, _ in data.samples] == ["aachen", "zurich"]  # sorted, stable
    image, mask = data[0]
    assert image.shape == (3, H, W) and image.dtype == torch.uint8
    assert mask.shape == (H, W) and mask.dtype == torch.int64
    expected = np.vectorize(CITYSCAPES_PAIRS.get)(_labels(list(CITYSCAPES_PAIRS)))
    assert np.array_equal(mask.numpy(), expected)
    assert data.classes[0] == "road" and data.classes[18] == "bicycle"
    assert data.palette[0].tolist() == [128, 64, 128]


def test_cityscapes_missing_label_names_the_file(tmp_path):
    root = _cityscapes(tmp_path)
    missing = root / "gtFine/train/zurich/zurich_000000_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="zurich_000000_000019_gtFine_labelIds.png"):
        Cityscapes(root, "train")


def test_cityscapes_missing_split_folder(tmp_path):
    _cityscapes(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="leftImg8bit/val"):
        Cityscapes(tmp_path, "val")


def test_cityscapes_label_id_outside_table(tmp_path):
    root = _cityscapes(tmp_path, cities=("aachen",))
    _gray(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", _labels([7, 34]))
    with pytest.raises(ValueError, match=r"aachen_000000_000019_gtFine_labelIds\.png.*34"):
        Cityscapes(root, "train")[0]


# ---------------------------------------------------------------- ADE20K

def _ade(root, split="training", values=(0, 1, 2, 150)):
    base = root / "ADEChallengeData2016"
    prefix = "ADE_train" if split == "training" else "ADE_val"
    for i in (1, 2):
        _rgb(base / "images" / split / f"{prefix}_{i:08d}.jpg", fmt="JPEG")
        _gray(base / "annotations" / split / f"{prefix}_{i:08d}.png", _labels(values))
    return root


def test_ade20k_reduces_zero_label(tmp_path):
    data = ADE20K(_ade(tmp_path), "training")
    assert len(data) == 2 and data.num_classes == 150
    _, mask = data[1]
    assert np.array_equal(mask.numpy(), _labels([255, 0, 1, 149]))
    assert data.classes[0] == "wall" and data.classes[149] == "flag"


def test_ade20k_accepts_the_inner_folder_and_short_split_names(tmp_path):
    _ade(tmp_path, "validation")
    data = ADE20K(tmp_path / "ADEChallengeData2016", "val")
    assert data.samples[0][0].name == "ADE_val_00000001.jpg"


def test_ade20k_value_above_150_is_an_error(tmp_path):
    _ade(tmp_path, values=(3, 151))
    with pytest.raises(ValueError, match=r"ADE_train_00000001\.png.*151"):
        ADE20K(tmp_path, "training")[0]


def test_grayscale_jpeg_becomes_rgb(tmp_path):
    _ade(tmp_path)
    path = tmp_path / "ADEChallengeData2016/images/training/ADE_train_00000001.jpg"
    Image.fromarray(np.full((H, W), 90, np.uint8), mode="L").save(path, format="JPEG")
    image, _ = ADE20K(tmp_path, "training")[0]
    assert image.shape == (3, H, W)


# ---------------------------------------------------------------- VOC aug

def _voc(root, ids=("2007_000032", "2007_000039"), palette=True, values=(0, 15, 20, 255)):
    base = root / "VOCdevkit" / "VOC2012"
    for i in ids:
        _rgb(base / "JPEGImages" / f"{i}.jpg", fmt="JPEG")
        writer = _palette_png if palette else _gray
        writer(base / "SegmentationClassAug" / f"{i}.png", _labels(values))
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "trainaug"):
        (sets / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.mark.parametrize("palette", [True, False], ids=["palette-png", "gray-png"])
def test_voc_reads_palette_and_gray_labels(tmp_path, palette):
    data = VOCAug(_voc(tmp_path, palette=palette), "trainaug")
    assert len(data) == 2 and data.num_classes == 21
    _, mask = data[0]
    assert np.array_equal(mask.numpy(), _labels([0, 15, 20, 255]))
    assert data.classes[15] == "person" and data.palette[15].tolist() == [192, 128, 128]


def test_voc_missing_image_listed_in_split(tmp_path):
    root = _voc(tmp_path)
    (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").write_text("2007_000032\n2011_999999\n")
    with pytest.raises(FileNotFoundError, match="2011_999999.jpg"):
        VOCAug(root, "val")


def test_voc_unknown_split_lists_the_split_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="trainaug"):
        VOCAug(_voc(tmp_path), "aug")


def test_voc_label_21_is_an_error(tmp_path):
    _voc(tmp_path, values=(0, 21))
    with pytest.raises(ValueError, match=r"2007_000032\.png.*21"):
        VOCAug(tmp_path, "train")[0]


def test_voc_rgb_label_is_refused(tmp_path):
    root = _voc(tmp_path)
    _rgb(root / "VOCdevkit/VOC2012/SegmentationClassAug/2007_000039.png")
    with pytest.raises(ValueError, match=r"2007_000039\.png.*mode 'RGB'"):
        VOCAug(root, "train")[1]


def test_voc_unreadable_image_names_the_file(tmp_path):
    root = _voc(tmp_path)
    (root / "VOCdevkit/VOC2012/JPEGImages/2007_000039.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"cannot read image .*2007_000039\.jpg"):
        VOCAug(root, "train")[1]


def test_label_of_another_size_names_both_files(tmp_path):
    root = _voc(tmp_path)
    _rgb(root / "VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg", height=H + 1, fmt="JPEG")
    with pytest.raises(ValueError, match=r"2007_000032\.png is 8x6 .*2007_000032\.jpg is 8x7"):
        VOCAug(root, "train")[0]


# ---------------------------------------------------------------- build_dataset

def test_build_dataset_maps_split_names_and_checks_the_config(tmp_path):
    _ade(tmp_path)
    data = get_config("psanet_r50-d8_512x512_80k_ade20k").data
    assert isinstance(build_dataset(data, "train", tmp_path), ADE20K)
    wrong = get_config("psanet_r50-d8_512x512_80k_ade20k", num_classes=151).data
    with pytest.raises(ValueError, match="num_classes is 151"):
        build_dataset(wrong, "train", tmp_path)
    not_reduced = get_config("psanet_r50-d8_512x512_80k_ade20k", reduce_zero_label=False).data
    with pytest.raises(ValueError, match="reduce_zero_label"):
        build_dataset(not_reduced, "train", tmp_path)
    with pytest.raises(ValueError, match="needs a data root"):
        build_dataset(data, "train")


def test_build_dataset_voc_train_is_trainaug(tmp_path):
    _voc(tmp_path, ids=("2007_000032",))
    (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/trainaug.txt").write_text("2007_000039\n")
    data = get_config("psanet_r50-d8_512x512_20k_voc12aug").data
    with pytest.raises(FileNotFoundError, match="2007_000039.jpg"):
        build_dataset(data, "train", tmp_path)
