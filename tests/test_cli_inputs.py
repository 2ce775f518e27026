"""Inputs that used to go wrong quietly: a bad image among good ones, 16-bit images,
float64 and half tensors, checkpoints that need --trust-pickle, outputs named alike."""
import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from psanet_lite.build import build_model
from psanet_lite.checkpoint import save_checkpoint
from psanet_lite.cli import main
from psanet_lite.configs import get_config
from psanet_lite.data.files import read_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    config = get_config("psanet_lite_context")
    torch.manual_seed(0)
    save_checkpoint(path, build_model(config), config)
    return path


def _image(path, size=64):
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_one_bad_image_does_not_stop_the_others(checkpoint, tmp_path, capsys):
    good, bad, other = _image(tmp_path / "good.png"), tmp_path / "bad.png", _image(tmp_path / "other.png")
    bad.write_text("not an image")
    out = tmp_path / "out"
    code = main(["predict", str(good), str(bad), str(other), "--checkpoint", str(checkpoint),
                 "--out-dir", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert captured.err.startswith(f"psanet-lite predict: 1 of 3 images failed: cannot read image {bad}")
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "good_overlay.png", "other.png", "other_overlay.png"]
    assert f"{other} -> " in captured.out


def test_a_16_bit_gray_image_is_scaled_to_8_bits(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    expected = np.round(ramp / 257).astype(np.uint8)  # 65535 -> 255
    assert np.array_equal(image[0].numpy(), expected) and torch.equal(image[0], image[2])
    assert (image == 255).float().mean() < 0.01  # not clipped to white


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_the_model_takes_float64_and_half_images_on_the_cpu(dtype):
    torch.manual_seed(0)
    model = build_model("psanet_lite_context").eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(images.to(dtype).float()), model(images.to(dtype))
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_trust_pickle_loads_with_a_warning(tmp_path, capsys):
    config = get_config("psanet_lite_context")
    path = tmp_path / "pickled.pt"
    save_checkpoint(path, build_model(config), config, metadata={"args": argparse.Namespace(lr=0.1)})
    out = tmp_path / "out"
    argv = ["predict", str(_image(tmp_path / "scene.png")), "--checkpoint", str(path), "--out-dir", str(out),
            "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds Python objects beyond tensors" in err and "--trust-pickle" in err and not out.exists()
    assert main(argv + ["--trust-pickle"]) == 0
    assert "warning: --trust-pickle" in capsys.readouterr().err
    assert (out / "scene.png").is_file()


def test_predict_replaces_its_own_earlier_outputs(checkpoint, tmp_path):
    image, out = _image(tmp_path / "scene.png"), tmp_path / "out"
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out-dir", str(out), "--device", "cpu"]
    assert main(argv) == 0
    (out / "scene.png").write_bytes(b"stale")
    assert main(argv) == 0
    assert Image.open(out / "scene.png").mode == "P"
