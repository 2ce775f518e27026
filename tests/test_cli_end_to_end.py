"""``psanet-lite train``, ``eval``, ``predict`` and ``attention`` one after the other, as a
user runs them: on miniature Cityscapes, ADE20K and VOC-aug trees (the published presets
with a small backbone and small crops) and on the generated context dataset.
"""
import json

import numpy as np
import pytest
from PIL import Image

from miniature_trees import ade20k, blocks, cityscapes, voc
from psanet_lite import data
from psanet_lite.cli import main
from psanet_lite.configs import get_config

# Small enough for a CPU test, the rest of the preset untouched (schedule, loss, test mode).
SMALL = ["model.backbone=lite", "model.channels=16", "model.aux_channels=8", "model.mask_size=(15,15)",
         "data.crop_size=(64,64)", "train.iterations=2", "train.batch_size=2", "train.batch_per_gpu=2",
         "train.sync_bn=False", "train.eval_interval=2", "train.checkpoint_interval=2"]


def _cityscapes_tree(root):
    # labelIds 7, 8, 26 and 0 -> trainIds 0 (road), 1 (sidewalk), 13 (car), 255 (ignored)
    label_map = blocks([7, 8, 26, 0], 64, 128)
    for split in ("train", "val"):
        cityscapes(root, split, size=(64, 128), label_map=label_map)
    return root, root / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"


def _ade20k_tree(root):
    label_map = blocks([0, 1, 2, 150], 64, 64)  # 0 is "other": ignored
    for split in ("training", "validation"):
        ade20k(root, split, size=(64, 64), label_map=label_map)
    return root, root / "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg"


def _voc_tree(root):
    voc(root, size=(64, 64), label_map=blocks([0, 15, 20, 255], 64, 64))
    return root, root / "VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg"


CASES = {
    # the 769x769 Cityscapes preset tests with sliding windows: here 64x64 windows, stride 32
    "psanet_r50-d8_769x769_40k_cityscapes": (_cityscapes_tree, (128, 64), ["test.crop_size=(64,64)",
                                                                          "test.stride=(32,32)"]),
    "psanet_r50-d8_512x512_80k_ade20k": (_ade20k_tree, (64, 64), []),
    "psanet_r50-d8_512x512_20k_voc12aug": (_voc_tree, (64, 64), []),
}


def _sets(options):
    return [arg for option in options for arg in ("--set", option)]


@pytest.mark.parametrize("preset", list(CASES))
def test_train_eval_predict_attention_on_a_miniature_tree(preset, tmp_path, capsys):
    make_tree, scale, test_options = CASES[preset]
    root, image = make_tree(tmp_path / "data")
    options = _sets(SMALL + [f"data.scale={scale}"] + test_options)
    work_dir = tmp_path / "run"
    assert main(["train", preset, "--work-dir", str(work_dir), "--data-root", str(root), *options,
                 "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    checkpoint = work_dir / "final.pt"
    assert checkpoint.is_file() and list((work_dir / "checkpoints").glob("iter_*.pt"))
    validation = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    validation = [record for record in validation if "mIoU" in record]
    assert [record["iteration"] for record in validation] == [2]

    # eval: the same numbers as the trainer's validation (same weights, data and test mode)
    metrics_file = tmp_path / "metrics.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data-root", str(root), "--workers", "0",
                 "--device", "cpu", "--out", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    num_classes = get_config(preset).data.num_classes
    assert len(metrics["IoU"]) == len(metrics["classes"]) == num_classes
    assert metrics["mIoU"] == pytest.approx(validation[-1]["mIoU"], abs=1e-9)
    assert "mIoU" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(checkpoint), "--data-root", str(root), "--workers", "0",
                 "--device", "cpu", "--ms-flip"]) == 0

    # predict: a palette PNG of the image's own size holding class indices, and an overlay
    out_dir = tmp_path / "pred"
    assert main(["predict", str(image), "--checkpoint", str(checkpoint), "--device", "cpu",
                 "--out-dir", str(out_dir)]) == 0
    width, height = Image.open(image).size
    labels = Image.open(out_dir / f"{image.stem}.png")
    assert labels.mode == "P" and labels.size == (width, height)
    assert int(np.asarray(labels).max()) < num_classes
    assert Image.open(out_dir / f"{image.stem}_overlay.png").size == (width, height)

    # attention: both masks of one pixel, drawn over the image
    out_dir = tmp_path / "att"
    assert main(["attention", str(image), "--pixel", "40,30", "--checkpoint", str(checkpoint),
                 "--device", "cpu", "--out-dir", str(out_dir)]) == 0
    drawn = sorted(path.name for path in out_dir.iterdir())
    assert drawn == [f"{image.stem}_collect_40_30.png", f"{image.stem}_distribute_40_30.png"]
    assert Image.open(out_dir / drawn[0]).size == (width, height)


def test_train_then_eval_on_the_context_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(data.CONTEXT_LENGTHS, "train", 16)
    monkeypatch.setitem(data.CONTEXT_LENGTHS, "val", 4)
    work_dir = tmp_path / "run"
    options = _sets(["train.iterations=3", "train.batch_size=4", "train.batch_per_gpu=4",
                     "train.eval_interval=3", "train.checkpoint_interval=3"])
    assert main(["train", "psanet_lite_context", "--work-dir", str(work_dir), *options,
                 "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    records = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r][-1] == 3
    metrics_file = tmp_path / "metrics.json"
    assert main(["eval", "--checkpoint", str(work_dir / "final.pt"), "--workers", "0", "--device", "cpu",
                 "--out", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["classes"] == list(data.ContextDataset.classes)
    assert metrics["mIoU"] == pytest.approx([r for r in records if "mIoU" in r][-1]["mIoU"], abs=1e-9)
