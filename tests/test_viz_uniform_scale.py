"""viz.uniform_scale: codes over one fixed log2 range, their inverse, and the legend's ticks."""
import numpy as np
import pytest

from psanet_lite.viz import uniform_scale


@pytest.mark.parametrize("log_range", [1, 2.5, 4, 7])
def test_codes_span_the_fixed_range_and_decode_within_half_a_code(log_range):
    positions = 60
    ratios = 2.0 ** np.linspace(-log_range, log_range, 5 * positions)  # weight over uniform, the whole range
    weights = ratios.reshape(5, positions) / positions                 # 5 masks over 60 positions
    codes = uniform_scale.relative_codes(weights, log_range)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    decoded = uniform_scale.weights_of_codes(codes, log_range)
    assert np.abs(np.log2(decoded / weights)).max() <= log_range / 255 + 1e-9  # half of one code's 2L/255
    beyond = np.array([2.0 ** -(log_range + 1), 2.0 ** (log_range + 1), 0.0, 1.0]) / 4
    assert uniform_scale.relative_codes(beyond, log_range).tolist() == [0, 255, 0, 128]


@pytest.mark.parametrize("log_range", [0.5, 1, 2, 3, 4, 5, 6, 7.5, 10])
def test_legend_ticks_mark_both_ends_and_at_most_five_places(log_range):
    ticks = uniform_scale.legend_ticks(log_range)
    places = [at for at, _ in ticks]
    assert places == sorted(places) and places[0] == 0 and places[-1] == 1 and len(ticks) <= 5
    assert ticks[0][1].startswith("\u2264") and ticks[-1][1].startswith("\u2265")
    if log_range >= 1:
        assert (0.5, "1\u00d7") in ticks  # uniform, in the middle


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "4", None, True])
def test_bad_log_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="log_range must be a number > 0"):
        uniform_scale.check_log_range(bad)
