"""plot_attention_mask: one mask drawn on the interactive figure's scale, its target outlined,
the share on the target in the title; attention_colorbar labels the scale like the legend."""
import matplotlib
import numpy as np
import pytest
import torch

from psanet_lite.viz import attention_colorbar, plot_attention_mask


@pytest.fixture
def axes():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_a_mask_is_drawn_as_log2_over_uniform_with_its_target_and_share(axes):
    # 4x4 map of a 32 px image: 3/4 of the weight on cell (0, 3), none on (3, 3), the rest even.
    mask = torch.full((4, 4), 0.25 / 14)
    mask[0, 3], mask[3, 3] = 0.75, 0.0
    shown = plot_attention_mask(axes, mask, image_size=(32, 32), title="cell (2, 1)",
                                target={"box": (2, 26, 5, 29), "label": "deciding marker"})
    drawn = shown.get_array()
    assert drawn[0, 3] == pytest.approx(np.log2(0.75 * 16))
    assert drawn[1, 1] == pytest.approx(np.log2(16 * 0.25 / 14))
    assert drawn[3, 3] == -4  # no weight: clipped to the bottom of 1/16x .. 16x
    assert shown.get_clim() == (-4, 4) and shown.get_extent() == [0, 32, 32, 0]
    # the box lies in cell (0, 3) alone: share 0.75 / (1 / 16) = 12
    assert axes.get_title() == "cell (2, 1)\nshare on the deciding marker: 12.0\u00d7"
    (outline,) = axes.patches
    assert (outline.get_xy(), outline.get_width(), outline.get_height()) == ((26, 2), 4, 4)


def test_the_colorbar_has_the_legend_ticks_and_caption(axes):
    shown = plot_attention_mask(axes, np.full((2, 2), 0.25), image_size=(16, 16), log_range=2)
    colorbar = attention_colorbar(shown, ax=axes)
    assert list(colorbar.get_ticks()) == [-2, -1, 0, 1, 2]
    assert [t.get_text() for t in colorbar.ax.get_yticklabels()] == ["\u22641/4\u00d7", "1/2\u00d7", "1\u00d7",
                                                                     "2\u00d7", "\u22654\u00d7"]
    assert colorbar.ax.get_ylabel() == "weight relative to uniform attention"


def test_a_mask_that_is_not_2d_is_refused(axes):
    with pytest.raises(ValueError, match=r"mask must be \[h, w\] .* got shape \(16,\)"):
        plot_attention_mask(axes, np.full(16, 1 / 16), image_size=(32, 32))
