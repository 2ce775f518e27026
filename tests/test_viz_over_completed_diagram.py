"""The over-completed map drawing outlines the cells PSAMask really keeps for a position."""
import xml.etree.ElementTree as ET

import pytest
import torch

from psanet_lite.ops import psa_mask
from psanet_lite.viz import over_completed_diagram

SVG = "{http://www.w3.org/2000/svg}"


def _drawn_cells(svg, kept):
    # data-cell of the mask's rects, those drawn as kept (or all of them).
    rects = ET.fromstring(svg).iter(f"{SVG}rect")
    return {int(r.get("data-cell")) for r in rects
            if r.get("data-cell") is not None and (not kept or "oc-kept" in r.get("class").split())}


def _cells_psa_mask_keeps(height, width, position, mask):
    # Number the cells 1..mh*mw at every position; the column of `position` holds the kept ones.
    mh, mw = mask
    numbered = torch.arange(1, mh * mw + 1, dtype=torch.float64).view(1, mh * mw, 1, 1)
    y = psa_mask(numbered.expand(1, mh * mw, height, width).contiguous(), "collect", mask)  # [1, HW, H, W]
    column = y[0, :, position[0], position[1]]
    return {int(v) - 1 for v in column if v != 0}


@pytest.mark.parametrize("height, width, position, mask", [
    (3, 4, (1, 2), None), (3, 4, (0, 0), None), (3, 4, (2, 3), None), (5, 2, (4, 0), None),
    (3, 4, (0, 0), (3, 3)), (4, 4, (1, 2), (4, 4)), (6, 5, (5, 1), (3, 5)),
])
def test_kept_cells_are_the_ones_psa_mask_copies(height, width, position, mask):
    mask_size = mask or (2 * height - 1, 2 * width - 1)
    svg = over_completed_diagram(height, width, position, mask).svg
    assert _drawn_cells(svg, kept=False) == set(range(mask_size[0] * mask_size[1]))
    kept = _cells_psa_mask_keeps(height, width, position, mask_size)
    assert _drawn_cells(svg, kept=True) == kept
    if mask is None:  # over-completed: every position keeps exactly an H x W window
        assert len(kept) == height * width
        assert f"over-completed map of {position}: {mask_size[0]} x {mask_size[1]}" in svg
        assert f"window kept: {height} x {width}" in svg


def test_labels_give_the_shapes():
    svg = over_completed_diagram(16, 16, (3, 12)).svg
    assert "31*31 = 961 channels, centre cell 480" in svg
    assert "feature map: 16 x 16" in svg
    assert "the other 705 cells fall off the map" in svg   # 961 - 256


def test_a_position_off_the_map_is_refused():
    with pytest.raises(ValueError, match=r"position must lie on the 3 x 4 map, got \(3, 0\)"):
        over_completed_diagram(3, 4, (3, 0))
