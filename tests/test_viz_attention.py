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


# --- scale="uniform": one colour scale relative to uniform attention -------------------------

def _one_hot_masks(side, cells):
    """Collect maps [P, side, side] whose every mask puts weight 1/len(cells) on each of `cells`."""
    weights = torch.zeros(side * side)
    weights[cells] = 1.0 / len(cells)
    return weights[:, None, None].expand(-1, side, side).clone()  # Y[:, h, w] = weights for every (h, w)


def test_uniform_scale_codes_are_log2_of_weight_over_uniform_on_one_range():
    # 4x4 map, P = 16 positions; the mask of every pixel: 1/4 on cells 0..3, 0 elsewhere,
    # i.e. 4x uniform (log2 = 2) on four cells and nothing (clipped to -4) on the rest.
    collect = _one_hot_masks(4, [0, 1, 2, 3])
    (data,) = read_attention_data(AttentionFigure(np.zeros((8, 8, 3), np.uint8), collect, scale="uniform"))
    codes = data["collect"]["codes"]
    assert np.all(codes[:, :4] == round((2 + 4) / 8 * 255)) and np.all(codes[:, 4:] == 0)
    (wide,) = read_attention_data(
        AttentionFigure(np.zeros((8, 8, 3), np.uint8), collect, scale="uniform", log_range=2))
    assert np.all(wide["collect"]["codes"][:, :4] == 255)  # 4x is the top of a 1/4x .. 4x range
    assert np.allclose(data["collect"]["values"][:, :4], 0.25, rtol=2 ** (4 / 255) - 1)


def test_uniform_scale_gives_one_weight_one_colour_in_every_mask():
    # Two masks share their largest weight 0.5 at different places; "max" draws both at 255,
    # and a weight of 0.25 at code 128 in one and 255 in the other; "uniform" gives equal
    # weights equal codes (0.5 * 4 = 2x: (1 + 4) / 8 * 255; 0.25 = 1x: 127.5).
    rows = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0], [0.25] * 4, [0.25] * 4])  # row s = mask of s
    collect = rows.T.reshape(4, 2, 2)  # Y[t, h, w] = mask of pixel s = h*2 + w at t
    for scale, half, quarter in (("max", (255, 255), (128, 255)), ("uniform", (159, 159), (128, 128))):
        (data,) = read_attention_data(AttentionFigure(np.zeros((4, 4, 3), np.uint8), collect, scale=scale))
        codes = data["collect"]["codes"]
        assert (codes[0, 0], codes[1, 0]) == half, scale
        assert (codes[1, 1], codes[2, 0]) == quarter, scale


def test_uniform_scale_values_follow_the_weights_within_a_code_and_peaks_are_exact():
    collect, distribute = _attention(7, 4, 5)
    figure = AttentionFigure(np.zeros((16, 20, 3), np.uint8), collect, distribute, scale="uniform", log_range=6)
    (data,) = read_attention_data(figure)
    assert figure.spec["legend"]["caption"] == "weight relative to uniform attention"
    for branch, y in (("collect", collect.reshape(20, 20).T), ("distribute", distribute.reshape(20, 20))):
        weights = y.double().numpy()
        inside = (weights * 20 >= 2 ** -6) & (weights * 20 <= 2 ** 6)
        step = 2 * 6 / 255  # one code in log2 units
        error = np.abs(np.log2(data[branch]["values"]) - np.log2(weights))
        assert error[inside].max() <= step / 2 + 1e-6
        assert np.array_equal(data[branch]["peaks"], weights.argmax(axis=1))


# --- targets: the outlined box and the share of each clicked mask on it ----------------------

def _boxed_cells(box, stride, side):
    """Cells of a side x side map whose pixels overlap box (y0, x0, y1, x1), by hand."""
    y0, x0, y1, x1 = box
    return [i * side + j for i in range(side) for j in range(side)
            if stride * i <= y1 and stride * i + stride - 1 >= y0 and stride * j <= x1 and stride * j + stride - 1 >= x0]


def test_all_weight_on_the_box_gives_positions_over_cells_and_uniform_gives_one():
    # 32x32 image, 4x4 map (stride 8): the box touches cells (0, 2) and (0, 3); every collect
    # mask puts all its weight there, every distribute mask is uniform.
    box = (0, 16, 7, 31)
    collect = _one_hot_masks(4, [2, 3])
    distribute = torch.full((16, 4, 4), 1 / 16)
    targets = [[{"pixels": (24, 0, 31, 7), "box": box, "label": "deciding marker"}]]
    figure = AttentionFigure(np.zeros((32, 32, 3), np.uint8), collect, distribute, scale="uniform", targets=targets)
    (data,) = read_attention_data(figure)
    (target,) = data["targets"]
    assert target["label"] == "deciding marker" and target["box"] == list(box)
    assert target["cells"] == [12]  # the region (24, 0, 31, 7) is cell (3, 0)
    assert target["shares"]["collect"] == pytest.approx([16 / 2])
    assert target["shares"]["distribute"] == pytest.approx([1.0])
    assert figure.spec["images"][0]["regions"] == [-1] * 12 + [0, -1, -1, -1]


def test_embedded_shares_match_a_computation_by_hand_and_cells_go_to_the_bigger_region():
    collect, distribute = _attention(8, 4, 4)
    # region A covers cell (0, 0) fully and 16, 16 and 4 px of cells (0, 1), (1, 0), (1, 1);
    # region B covers 36 px of (1, 1), 30 of (1, 2) and (2, 1), 25 of (2, 2): (1, 1) is B's.
    pixels_a = np.zeros((32, 32), bool)
    pixels_a[:10, :10] = True
    targets = [[{"pixels": pixels_a, "box": (0, 24, 9, 31), "label": "a"},
                {"pixels": (10, 10, 20, 20), "box": (30, 0, 31, 15), "label": "b"}]]
    (data,) = read_attention_data(
        AttentionFigure(np.zeros((32, 32, 3), np.uint8), collect, distribute, targets=targets))
    a, b = data["targets"]
    assert a["cells"] == [0, 1, 4] and b["cells"] == [5, 6, 9, 10]
    masks = {"collect": collect.reshape(16, 16).T.double(), "distribute": distribute.reshape(16, 16).double()}
    for target in (a, b):
        boxed = _boxed_cells(target["box"], 8, 4)
        for branch, rows in masks.items():
            expected = [float(sum(rows[s, t] for t in boxed)) / (len(boxed) / 16) for s in target["cells"]]
            assert target["shares"][branch] == pytest.approx(expected, rel=1e-6), (target["label"], branch)


def test_marker_targets_lead_each_object_to_its_deciding_marker():
    from psanet_lite.data import MarkerDataset
    from psanet_lite.viz import marker_targets

    val = MarkerDataset("val", length=2)
    collect, distribute = _attention(9, 16, 16)
    images = [val.read(k)[0] for k in range(2)]
    targets = [marker_targets(val.objects(k), val.size) for k in range(2)]
    data = read_attention_data(AttentionFigure(images, [collect] * 2, [distribute] * 2, scale="uniform",
                                               targets=targets))
    column = collect.reshape(256, 256).double()  # [source, receiver]
    for k in range(2):
        objects = val.objects(k)
        assert len(data[k]["targets"]) == len(objects)
        for o, target in zip(objects, data[k]["targets"]):
            assert target["box"] == list(o["marker"])
            # the object's centre cell is the object's, and the share there is the one
            # engine.marker_attention_shares measures (weight on the marker's cells / their share)
            s = o["centre"][0] // 8 * 16 + o["centre"][1] // 8
            boxed = _boxed_cells(o["marker"], 8, 16)
            expected = float(column[boxed, s].sum()) * 256 / len(boxed)
            assert target["shares"]["collect"][target["cells"].index(s)] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("scale", ["max", "uniform"])
def test_four_book_images_with_targets_stay_under_two_megabytes(scale):
    from psanet_lite.data import MarkerDataset
    from psanet_lite.viz import marker_targets

    # Random masks barely compress: the worst case for the budget of chapter 8's figure.
    val = MarkerDataset("val", length=4)
    maps = [_attention(seed, 16, 16) for seed in range(4)]
    figure = AttentionFigure([val.read(k)[0] for k in range(4)], [c for c, _ in maps], [d for _, d in maps],
                             scale=scale, targets=[marker_targets(val.objects(k), val.size) for k in range(4)])
    assert figure.nbytes < 2_000_000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": "log"}, "scale must be 'max' .* or 'uniform' .*, got 'log'"),
        ({"scale": "uniform", "log_range": 0}, "log_range must be a number > 0 .*, got 0"),
        ({"scale": "uniform", "log_range": "wide"}, "log_range must be a number > 0"),
        ({"log_range": 3}, "log_range applies to scale='uniform' only"),
        ({"scale": "uniform", "collect": torch.full((4, 2, 2), -0.25)}, r"weights >= 0 .* collect\[0\] holds -0.25"),
        ({"targets": []}, "one list of target dicts .* per image: 1 image.*, got 0 entries"),
        ({"targets": [{"pixels": (0, 0, 1, 1), "box": (0, 0, 1, 1)}]}, r"targets\[0\] must be a list of dicts"),
        ({"targets": [[{"pixels": (0, 0, 1, 1)}]]}, r"targets\[0\]\[0\] must have the keys 'pixels', 'box'"),
        ({"targets": [[{"pixels": (0, 0, 1, 1), "box": (0, 0, 4, 1)}]]},
         r"targets\[0\]\[0\]\['box'\] must be a box .* inside the 4x4 image, got \(0, 0, 4, 1\)"),
        ({"targets": [[{"pixels": np.ones((3, 3), bool), "box": (0, 0, 1, 1)}]]},
         r"targets\[0\]\[0\]\['pixels'\] must be a bool \[4, 4\] array .* shape \(3, 3\)"),
    ],
)
def test_bad_scale_and_targets_are_refused_with_a_clear_message(kwargs, message):
    kwargs = {"collect": torch.full((4, 2, 2), 0.25), **kwargs}
    with pytest.raises(ValueError, match=message):
        AttentionFigure(np.zeros((4, 4, 3), np.uint8), **kwargs)


def test_targets_need_an_image_of_whole_cells():
    target = [[{"pixels": (0, 0, 1, 1), "box": (0, 0, 1, 1)}]]
    with pytest.raises(ValueError, match=r"targets\[0\] needs an image of whole cells .* 5x4, the map 2x2"):
        AttentionFigure(np.zeros((5, 4, 3), np.uint8), torch.full((4, 2, 2), 0.25), targets=target)
