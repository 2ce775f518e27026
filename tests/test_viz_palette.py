"""Colour helpers: palettes, colormap tables, label colouring and blending."""
import numpy as np
import pytest

from psanet_lite.viz import colorize_labels, colormap_lut, heatmap, label_palette, overlay


def test_label_palette_is_the_pascal_voc_colour_map():
    # The first nine entries of the PASCAL VOC colour map, as the VOC devkit defines them.
    voc = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128),
           (128, 0, 128), (0, 128, 128), (128, 128, 128), (64, 0, 0)]
    assert label_palette(9).tolist() == [list(c) for c in voc]
    assert len({tuple(c) for c in label_palette(256)}) == 256


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_label_palette_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        label_palette(bad)


def test_colormap_lut_spans_the_colormap():
    gray = colormap_lut("gray")
    assert gray.shape == (256, 3) and gray.dtype == np.uint8
    assert np.array_equal(gray[:, 0], np.arange(256))
    inferno = colormap_lut("inferno")
    assert inferno[0].sum() < 10 and inferno[-1].sum() > 600  # near black to near white
    with pytest.raises(ValueError, match="colormap"):
        colormap_lut("no-such-map")


def test_colorize_labels_paints_classes_and_ignored_pixels():
    labels = np.array([[0, 1, 2], [255, 2, 1]])
    out = colorize_labels(labels, label_palette(3), ignore_color=(9, 9, 9))
    assert out.shape == (2, 3, 3)
    assert out[0, 1].tolist() == [128, 0, 0] and out[0, 2].tolist() == [0, 128, 0]
    assert out[1, 0].tolist() == [9, 9, 9]
    with pytest.raises(ValueError, match="0..2"):
        colorize_labels(np.array([[3]]), label_palette(3))
    with pytest.raises(ValueError, match="2-D integer"):
        colorize_labels(np.zeros((2, 2)), label_palette(3))


def test_heatmap_scales_to_the_full_table():
    out = heatmap(np.array([[1.0, 2.0, 3.0]]), "gray")
    assert out[0, :, 0].tolist() == [0, 128, 255]
    assert heatmap(np.full((2, 2), 5.0), "gray").max() == 0


def test_overlay_blends_with_scalar_and_per_pixel_alpha():
    image = np.full((1, 2, 3), 100, np.uint8)
    colors = np.full((1, 2, 3), 200, np.uint8)
    assert overlay(image, colors, 0.5)[0, 0].tolist() == [150, 150, 150]
    per_pixel = overlay(image, colors, np.array([[0.0, 1.0]]))
    assert per_pixel[0, 0, 0] == 100 and per_pixel[0, 1, 0] == 200
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        overlay(image, colors[:, :1], 0.5)
