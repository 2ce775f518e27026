"""AttentionFigure: the masks it embeds are the clicked pixel's collect column and
distribute row, within 8-bit quantization, and the HTML is self-contained."""
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from psanet_lite.ops import psa_mask
from psanet_lite.viz import AttentionFigure, read_attention_data


def _attention(seed, height, width):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, (2 * height - 1) * (2 * width - 1), height, width, generator=generator)
    collect = psa_mask(logits, "collect").softmax(dim=1)[0]  # (HW, H, W)
    distribute = psa_mask(logits, "distribute").softmax(dim=1)[0]
    return collect, distribute


def test_embedded_masks_are_the_clicked_pixels_column_and_row():
    height, width = 3, 4
    collect, distribute = _attention(0, height, width)
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    figure = AttentionFigure(image, collect, distribute)
    (data,) = read_attention_data(figure.to_html())
    assert (data["map_height"], data["map_width"]) == (height, width)
    for h in range(height):
        for w in range(width):
            s = h * width + w
            # collect: pixel (h, w) gathers with the weights in column s = Y[:, h, w];
            # distribute: pixel (h, w) sends with the weights in row s = Y[s].
            for branch, expected in (("collect", collect[:, h, w]), ("distribute", distribute[s].flatten())):
                expected = expected.numpy().astype(np.float64)
                tolerance = expected.max() / 255 / 2 + 1e-7  # weights >= 0: scaled from 0 to max
                assert np.allclose(data[branch]["values"][s], expected, atol=tolerance), (branch, h, w)
                codes = data[branch]["codes"][s]
                assert codes.max() == 255
    # Collect and distribute really differ here, so a swapped layout could not pass.
    assert not np.allclose(data["collect"]["values"], data["distribute"]["values"])


def test_a_flat_mask_stays_flat_and_signed_values_keep_their_range():
    flat = torch.full((4, 2, 2), 0.25)  # every pixel spreads evenly over the 4 positions
    (data,) = read_attention_data(AttentionFigure(np.zeros((4, 4, 3), np.uint8), flat))
    assert np.all(data["collect"]["codes"] == 255)
    signed = torch.arange(-4.0, 12.0).view(4, 2, 2)
    (data,) = read_attention_data(AttentionFigure(np.zeros((4, 4, 3), np.uint8), signed))
    assert np.allclose(data["collect"]["values"], signed.view(4, 4).T.numpy(), atol=16 / 255)


def test_several_images_of_different_sizes_and_a_batch():
    maps = [_attention(1, 2, 3), _attention(2, 4, 4)]
    images = [np.zeros((16, 24, 3), np.uint8), torch.rand(3, 32, 32)]  # HWC uint8 and CHW float
    figure = AttentionFigure(images, [c for c, _ in maps], [d for _, d in maps], names=["a", "b"])
    data = read_attention_data(figure.spec)
    assert [(d["name"], d["map_height"], d["map_width"]) for d in data] == [("a", 2, 3), ("b", 4, 4)]
    expected = maps[1][0][:, 3, 1].numpy()
    assert np.allclose(data[1]["collect"]["values"][3 * 4 + 1], expected, atol=expected.max() / 255)

    collect, _ = _attention(3, 2, 2)
    batch = AttentionFigure(torch.rand(2, 3, 8, 8), torch.stack([collect, collect]))
    assert len(read_attention_data(batch)) == 2 and batch.spec["branches"] == ["collect"]


def test_html_is_self_contained_with_fresh_ids():
    collect, distribute = _attention(4, 3, 3)
    figure = AttentionFigure(np.zeros((9, 9, 3), np.uint8), collect, distribute)
    first, second = figure._repr_html_(), figure._repr_html_()
    ids = [re.search(r'<div id="([^"]+)"', html).group(1) for html in (first, second)]
    assert ids[0] != ids[1]
    assert f'id="{ids[0]}-data"' in first and f'getElementById("{ids[0]}")' in first
    assert "http" not in first  # no external script, style, font or image
    assert "<script src" not in first and "<link" not in first
    assert figure.nbytes == len(figure.to_html().encode())


def test_size_budget_and_standalone_page(tmp_path):
    collect, distribute = _attention(5, 4, 4)
    figure = AttentionFigure(np.zeros((8, 8, 3), np.uint8), collect, distribute)
    path = tmp_path / "attention.html"
    figure.save(path)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "psanet-fig-attention" in text
    with pytest.raises(ValueError, match="max_bytes"):
        AttentionFigure(np.zeros((8, 8, 3), np.uint8), collect, distribute, max_bytes=1000)


@pytest.mark.parametrize("count, side", [(3, 16), (1, 24)])
def test_book_sized_figures_stay_under_two_megabytes(count, side):
    # Random masks on noise images barely compress: the worst case for the budget.
    # 16x16 maps are 128 px images at stride 8, 24x24 maps 192 px ones.
    maps = [_attention(seed, side, side) for seed in range(count)]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8 * side, 8 * side, 3), dtype=np.uint8) for _ in range(count)]
    figure = AttentionFigure(images, [c for c, _ in maps], [d for _, d in maps])
    assert figure.nbytes < 2_000_000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"collect": torch.rand(5, 2, 3)}, r"\[H'\*W', H', W'\]"),
        ({"collect": [torch.rand(4, 2, 2)] * 2}, "2 collect"),
        ({"collect": torch.rand(4, 2, 2), "distribute": torch.rand(9, 3, 3)}, "differ in shape"),
        ({"collect": torch.rand(4, 2, 2), "interpolation": "cubic"}, "interpolation"),
        ({"collect": torch.rand(4, 2, 2), "names": ["a", "b"]}, "name"),
        ({"collect": torch.full((4, 2, 2), float("nan"))}, "finite"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionFigure(np.zeros((4, 4, 3), np.uint8), **kwargs)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"\[H, W\], \[H, W, 3\]"):
        AttentionFigure(np.zeros((4, 4, 5)), torch.rand(4, 2, 2))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_figure_script_is_valid_javascript(tmp_path):
    collect, distribute = _attention(6, 2, 2)
    html = AttentionFigure(np.zeros((4, 4, 3), np.uint8), collect, distribute).to_html()
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    path = tmp_path / "figure.js"
    path.write_text(script)
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
