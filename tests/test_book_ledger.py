"""The ledger page (book/ledger.md) names, for every difference between the paper, the
authors' code and mmsegmentation, the test that pins it: those tests exist, and the
one that lives here pins the window cut-off at whole-image test sizes."""
import ast
import re
from pathlib import Path

import pytest

from psanet_lite import build_model
from psanet_lite.configs import get_config

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "book" / "ledger.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _named_tests():
    return sorted(set(TEST_ID.findall(LEDGER.read_text())))


def test_the_ledger_names_tests():
    assert len(_named_tests()) >= 8


@pytest.mark.parametrize("path, name", _named_tests(), ids=lambda v: v)
def test_every_named_test_exists(path, name):
    tree = ast.parse((ROOT / path).read_text())
    defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert name in defined, f"book/ledger.md names {path}::{name}, which does not exist"


def _covered_fraction(length, mask):
    """Share of position pairs (p, q) on an axis of `length` whose offset q - p lies
    inside a mask of `mask` cells (offsets -(mask-1)//2 .. mask-1-(mask-1)//2)."""
    low, high = -((mask - 1) // 2), mask - 1 - (mask - 1) // 2
    inside = sum(1 for p in range(length) for q in range(length) if low <= q - p <= high)
    return inside / length**2


def test_whole_image_cityscapes_test_cuts_the_window():
    config = get_config("psanet_r50-d8_512x1024_40k_cityscapes")
    head = build_model(config).decode_head
    mh, mw = head.mask_size
    stride = 8
    crop = [side // stride for side in config.data.crop_size]           # 64 x 128 features
    whole = [side // stride for side in (1024, 2048)]                    # 128 x 256 features
    crop_h, crop_w, _ = head.attention_grid(*crop)
    whole_h, whole_w, _ = head.attention_grid(*whole)
    at_crop = _covered_fraction(crop_h, mh) * _covered_fraction(crop_w, mw)
    at_whole = _covered_fraction(whole_h, mh) * _covered_fraction(whole_w, mw)
    # The mask reaches every row of the training grid but not every column, and at the
    # whole-image test size far fewer position pairs lie inside the window.
    assert _covered_fraction(crop_h, mh) == 1.0 and at_crop < 1.0
    assert at_whole < at_crop
    # The 769x769 configs' 49x49 grid is covered exactly by the 97x97 mask.
    grid, _, _ = head.attention_grid(-(-769 // stride), -(-769 // stride))
    assert 2 * grid - 1 == mh and _covered_fraction(grid, mh) == 1.0
