"""``psanet-lite eval``, ``predict`` and ``attention`` on a small saved model."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from psanet_lite import data
from psanet_lite.build import build_model
from psanet_lite.checkpoint import export_mmseg, save_checkpoint
from psanet_lite.cli import main
from psanet_lite.data.transforms import build_eval_transforms
from psanet_lite.engine.metrics import confusion_matrix, segmentation_metrics


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """psanet-lite checkpoints of a (randomly initialised) context model, bi and collect-only, and an FCN."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, overrides in {"bi": {}, "collect": {"psa_type": "collect"}, "fcn": {"decode_head": "fcn"}}.items():
        torch.manual_seed(0)
        model = build_model("psanet_lite_context", **overrides)
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(paths[name], model, model.config)
    return paths


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    image, _ = data.ContextDataset("test", length=1)[0]
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return path


def _expected_classes(checkpoint, image_path):
    model = build_model(checkpoint=str(checkpoint)).eval()
    pixels = torch.from_numpy(np.array(Image.open(image_path))).permute(2, 0, 1)  # plain uint8 [3, H, W]
    with torch.no_grad():
        return model(build_eval_transforms(model.config.data)(pixels)[None]).argmax(1)[0]


def test_eval_prints_and_writes_metrics(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(data.CONTEXT_LENGTHS, "val", 2)
    out = tmp_path / "metrics.json"
    # --device cpu: the expected predictions below are computed on the CPU, bit for bit
    assert main(["eval", "--checkpoint", str(saved["bi"]), "--out", str(out), "--workers", "0", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "object, red cue" in printed and "mIoU" in printed
    record = json.loads(out.read_text())
    model = build_model(checkpoint=str(saved["bi"])).eval()
    val = data.ContextDataset("val", length=2)
    confusion = 0
    for i in range(2):
        image, mask = val.read(i)
        with torch.no_grad():
            pred = model(build_eval_transforms(model.config.data)(image)[None]).argmax(1)[0]
        confusion = confusion + confusion_matrix(pred, mask, 4)
    assert record["confusion"] == confusion.tolist()
    assert record["mIoU"] == pytest.approx(segmentation_metrics(confusion)["mIoU"])


def test_eval_with_ms_flip_and_an_mmseg_file(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(data.CONTEXT_LENGTHS, "val", 1)
    mmseg_file = tmp_path / "mmseg.pth"
    export_mmseg(build_model(checkpoint=str(saved["bi"])), mmseg_file)
    assert main(["eval", "--checkpoint", str(mmseg_file), "--workers", "0"]) == 2
    assert f"{mmseg_file} carries no config" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(mmseg_file), "--config", "psanet_lite_context",
                 "--ms-flip", "--workers", "0"]) == 0
    assert "aAcc" in capsys.readouterr().out


def test_predict_writes_palette_png_and_overlay(saved, image_file, tmp_path):
    out_dir = tmp_path / "pred"
    assert main(["predict", str(image_file), "--checkpoint", str(saved["bi"]), "--out-dir", str(out_dir),
                 "--device", "cpu"]) == 0
    labels = Image.open(out_dir / "scene.png")
    assert labels.mode == "P" and labels.size == (128, 128)
    assert np.array_equal(np.asarray(labels), _expected_classes(saved["bi"], image_file).numpy())
    assert labels.getpalette()[3:6] == data.ContextDataset.palette[1].tolist()
    overlay = Image.open(out_dir / "scene_overlay.png")
    assert overlay.mode == "RGB" and overlay.size == (128, 128)


def test_attention_writes_both_masks(saved, image_file, tmp_path, capsys):
    out_dir = tmp_path / "att"
    assert main(["attention", str(image_file), "--pixel", "100,20", "--checkpoint", str(saved["bi"]),
                 "--out-dir", str(out_dir)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["scene_collect_100_20.png", "scene_distribute_100_20.png"]
    assert Image.open(out_dir / "scene_collect_100_20.png").size == (128, 128)


def test_attention_masks_of_a_pixel():
    from psanet_lite.cli.attention import pixel_masks

    torch.manual_seed(0)
    model = build_model("psanet_lite_context").eval()
    image, _ = data.ContextDataset("test", length=1)[0]
    masks = pixel_masks(model, image, (100, 20))
    assert masks["collect"].shape == (16, 16) and masks["distribute"].shape == (16, 16)
    assert masks["collect"].sum().item() == pytest.approx(1.0, abs=1e-5)  # a softmax over positions
    maps = model.attention_maps(build_eval_transforms(model.config.data)(image)[None])
    cell = (100 // 8) * 16 + 20 // 8
    assert torch.equal(masks["distribute"], maps["distribute"][0, cell])
    with pytest.raises(ValueError, match="outside the 128x128"):
        pixel_masks(model, image, (128, 0))


def test_attention_of_one_direction_and_of_no_attention(saved, image_file, tmp_path, capsys):
    out_dir = tmp_path / "att"
    main(["attention", str(image_file), "--pixel", "5,5", "--checkpoint", str(saved["collect"]),
          "--out-dir", str(out_dir)])
    assert [p.name for p in out_dir.iterdir()] == ["scene_collect_5_5.png"]
    assert main(["attention", str(image_file), "--pixel", "5,5", "--checkpoint", str(saved["fcn"]),
                 "--out-dir", str(out_dir)]) == 2
    assert "has no attention" in capsys.readouterr().err
