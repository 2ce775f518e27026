"""Receptive-field arithmetic, gradient maps and the ReceptiveFieldFigure."""
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from psanet_lite.viz import (
    ReceptiveField,
    ReceptiveFieldFigure,
    effective_area,
    gradient_receptive_field,
    read_receptive_field_data,
    theoretical_receptive_field,
)


def _vgg16(until_pool5):
    conv, pool = (3, 1, 1, 1), (2, 2, 1, 0)
    layers = [conv, conv, pool, conv, conv, pool, conv, conv, conv, pool, conv, conv, conv, pool,
              conv, conv, conv]
    return layers + [pool] if until_pool5 else layers


def test_vgg16_receptive_fields_match_the_published_values():
    # VGG-16's receptive field is 196 px at conv5_3 and 212 px at pool5 (stride 16 / 32),
    # the figures quoted across the detection literature.
    conv5_3 = theoretical_receptive_field(_vgg16(until_pool5=False))
    pool5 = theoretical_receptive_field(_vgg16(until_pool5=True))
    assert (conv5_3.size, conv5_3.jump) == (196, 16)
    assert (pool5.size, pool5.jump) == (212, 32)


def test_reading_layers_from_a_sequential_and_the_windows():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Sequential(nn.MaxPool2d(2, 2), nn.Conv2d(8, 8, 3, padding=2, dilation=2)))
    rf = theoretical_receptive_field(net)
    assert rf == theoretical_receptive_field([(3, 2, 1, 1), (2, 2, 1, 0), (3, 1, 2, 2)])
    # size: 1 + 2 = 3 (jump 2), + 1*2 = 5 (jump 4), + 4*4 = 21; start: 0 -> 0 -> 1 -> 1.
    assert rf == ReceptiveField(size=21, jump=4, start=1.0)
    assert rf.center(3) == 13.0 and rf.box(0, 3) == (-9.0, 3.0, 11.0, 23.0)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([(3, 1, 1)], "kernel, stride, dilation, padding"),
        ([(3, 0, 1, 1)], ">= 1"),
        ([(3, 1, 1, -1)], "padding >= 0"),
        ([(2.5, 1, 1, 0)], "ints"),
        (nn.Sequential(nn.Linear(3, 3)), "Linear"),
        (nn.Sequential(nn.Conv2d(1, 1, (3, 5))), "square"),
    ],
)
def test_bad_layers_are_refused(layers, message):
    with pytest.raises(ValueError, match=message):
        theoretical_receptive_field(layers)


def test_gradient_map_of_one_convolution_is_its_flipped_kernel():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 10.0).view(1, 1, 3, 3) - 5)
    maps = gradient_receptive_field(conv, torch.randn(3, 1, 7, 7), [(2, 3), (0, 0)])
    assert maps.shape == (2, 7, 7)
    # y[r, c] = sum_ij w[i, j] x[r + i - 1, c + j - 1]: the gradient places |w| around (r, c).
    assert torch.equal(maps[0, 1:4, 2:5], conv.weight[0, 0].abs())
    assert maps[0].sum() == conv.weight.abs().sum()
    assert torch.equal(maps[1, :2, :2], conv.weight[0, 0, 1:, 1:].abs())  # clipped at the corner


def test_gradient_map_checks_its_inputs():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="outside"):
        gradient_receptive_field(conv, torch.randn(1, 1, 4, 4), [(4, 0)])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        gradient_receptive_field(conv, torch.randn(1, 4, 4), [(0, 0)])
    with pytest.raises(TypeError, match="must return"):
        gradient_receptive_field(lambda x: x.flatten(), torch.randn(1, 1, 4, 4), [(0, 0)])


def test_effective_area_counts_the_pixels_holding_the_mass():
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 1] = 8.0
    maps[0, 2, 2] = 1.0
    maps[0, 3, 3] = 1.0
    maps[1] = 1.0
    assert effective_area(maps, mass=0.8).tolist() == [1, 13]
    assert effective_area(maps, mass=0.9).tolist() == [2, 15]
    with pytest.raises(ValueError, match="mass"):
        effective_area(maps, mass=0.0)


def _figure_data():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=2, dilation=2))
    rf = theoretical_receptive_field(net)
    positions = [(r, c) for r in (3, 10) for c in (4, 9)]
    maps = gradient_receptive_field(net, torch.randn(2, 1, 14, 14), positions)
    centers = [(rf.center(r), rf.center(c)) for r, c in positions]
    boxes = [rf.box(r, c) for r, c in positions]
    return maps, centers, boxes


def test_figure_embeds_each_positions_quantized_map():
    maps, centers, boxes = _figure_data()
    figure = ReceptiveFieldFigure([maps, maps * 2], [centers, centers], [boxes, boxes],
                                  image=np.zeros((14, 14, 3), np.uint8), names=["a", "b"])
    data = read_receptive_field_data(figure._repr_html_())
    assert [d["name"] for d in data] == ["a", "b"]
    for net in data:
        assert net["codes"].shape == (4, 14, 14)
        for p in range(4):
            expected = maps[p].numpy() / maps[p].numpy().max() * 255  # maps are >= 0 with zeros
            assert np.abs(net["codes"][p] - expected).max() <= 0.5 + 1e-6
        assert net["centers"] == [list(c) for c in centers]
        assert net["areas"] == effective_area(maps).tolist()
    assert "http" not in figure.to_html()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m, c, b: (m, c[:3], b), "centers"),
        (lambda m, c, b: (-m, c, b), ">= 0"),
        (lambda m, c, b: ([m, m[:, :5]], [c, c], [b, b]), "one input size"),
    ],
)
def test_figure_refuses_inconsistent_data(change, message):
    maps, centers, boxes = _figure_data()
    with pytest.raises(ValueError, match=message):
        ReceptiveFieldFigure(*change(maps, torch.tensor(centers), torch.tensor(boxes)))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_figure_script_is_valid_javascript(tmp_path):
    html = ReceptiveFieldFigure(*_figure_data()).to_html()
    path = tmp_path / "figure.js"
    path.write_text(re.search(r"<script>(.*?)</script>", html, re.S).group(1))
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
