"""The real datasets on miniature trees with their published names, formats and encodings."""
import numpy as np
import pytest
import torch
from PIL import Image

from psanet_lite.configs import get_config
from psanet_lite.data import ADE20K, Cityscapes, VOCAug, build_dataset

from miniature_trees import CITYSCAPES_PAIRS, H, W
from miniature_trees import ade20k as _ade
from miniature_trees import cityscapes as _cityscapes
from miniature_trees import gray as _gray
from miniature_trees import labels as _labels
from miniature_trees import rgb as _rgb
from miniature_trees import voc as _voc

# ---------------------------------------------------------------- Cityscapes


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
