"""Presets: every published row, its settings, and the published numbers against the table file."""

import json
import re
from pathlib import Path

import pytest

from psanet_lite.configs import Config, TrainConfig, get_config, names

TABLE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "mmsegmentation-psanet-results.md"
PUBLISHED = [name for name in names() if name.startswith("psanet_r")]


def test_every_row_of_the_results_table_is_a_preset():
    assert len(PUBLISHED) == 16
    assert "psanet_lite_context" in names()
    for depth in (50, 101):
        for crop, dataset, schedules in (
            ("512x1024", "cityscapes", (40, 80)),
            ("769x769", "cityscapes", (40, 80)),
            ("512x512", "ade20k", (80, 160)),
            ("512x512", "voc12aug", (20, 40)),
        ):
            for k in schedules:
                assert f"psanet_r{depth}-d8_{crop}_{k}k_{dataset}" in PUBLISHED


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_preset_settings(name):
    config = get_config(name)
    depth, crop, k, dataset = re.match(r"psanet_r(\d+)-d8_(\d+x\d+)_(\d+)k_(\w+)$", name).groups()
    m, d, t, test = config.model, config.data, config.train, config.test
    assert (m.backbone, m.depth, m.decode_head, m.psa_type) == ("resnetv1c", int(depth), "psa", "bi")
    assert (m.shrink_factor, m.normalization_factor, m.psa_softmax, m.compact) == (2, 1.0, True, False)
    assert (m.channels, m.proj_padding, m.softmax, m.dropout, m.aux_channels) == (512, 1, "reference", 0.1, 256)
    assert "x".join(map(str, d.crop_size)) == crop
    assert t.iterations == int(k) * 1000
    assert (t.lr, t.momentum, t.weight_decay, t.lr_power, t.min_lr, t.aux_weight) == (0.01, 0.9, 5e-4, 0.9, 1e-4, 0.4)
    expected = {
        "cityscapes": (19, (97, 97), 8, 2),
        "ade20k": (150, (66, 66), 16, 4),
        "voc12aug": (21, (97, 97), 16, 4),
    }[dataset]
    assert (d.num_classes, m.mask_size, t.batch_size, t.batch_per_gpu) == expected
    assert t.gpus == 4
    if crop == "769x769":
        assert (test.mode, test.crop_size, test.stride, m.align_corners) == ("slide", (769, 769), (513, 513), True)
    else:
        assert (test.mode, m.align_corners) == ("whole", False)
    assert d.reduce_zero_label == (dataset == "ade20k")
    assert config.published is not None and config.published.device == "V100"


def _table_rows():
    rows = []
    for line in TABLE.read_text().splitlines():
        if not line.startswith("| PSANet"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        _, backbone, crop, iterations, memory, fps, device, miou, miou_ms = cells[:9]
        rows.append(
            dict(
                depth=int(re.match(r"R-(\d+)-D8", backbone).group(1)),
                crop=crop,
                iterations=int(iterations),
                memory=None if memory == "-" else float(memory),
                fps=None if fps == "-" else float(fps),
                device=device,
                miou=float(miou),
                miou_ms=float(miou_ms),
                config=re.search(r"\[config\]\([^)]*/([^/)]+)\.py\)", line).group(1),
                model=re.search(r"\[model\]\(([^)]+)\)", line).group(1),
                log=re.search(r"\[log\]\(([^)]+)\)", line).group(1),
            )
        )
    return rows


@pytest.mark.skipif(not TABLE.exists(), reason="reference table not beside this checkout")
def test_published_numbers_match_the_reference_table():
    rows = _table_rows()
    assert len(rows) == 16
    by_mmseg_name = {get_config(n).published.mmseg_config: get_config(n) for n in PUBLISHED}
    for row in rows:
        config = by_mmseg_name[row["config"]]
        published = config.published
        assert (config.model.depth, config.train.iterations) == (row["depth"], row["iterations"])
        assert "x".join(map(str, config.data.crop_size)) == row["crop"]
        assert (published.miou, published.miou_ms_flip) == (row["miou"], row["miou_ms"])
        assert (published.memory_gb, published.fps, published.device) == (row["memory"], row["fps"], row["device"])
        assert (published.checkpoint_url, published.log_url) == (row["model"], row["log"])
        assert f"/{config.name}/" in row["model"]


def test_lite_preset_is_the_small_cpu_model():
    config = get_config("psanet_lite_context")
    assert config.model.backbone == "lite" and config.data.dataset == "context"
    assert 64 <= min(config.data.crop_size) and max(config.data.crop_size) <= 128
    assert config.published is None and config.data.num_classes == 4


def test_get_config_returns_independent_copies():
    first = get_config("psanet_lite_context")
    first.train.iterations = 1
    assert get_config("psanet_lite_context").train.iterations != 1


def test_replace_by_field_section_and_dotted_name():
    base = get_config("psanet_r50-d8_512x1024_40k_cityscapes")
    changed = base.replace(num_classes=5, psa_type="collect", **{"data.crop_size": [64, 64]}, test={"flip": False})
    assert (changed.data.num_classes, changed.model.psa_type, changed.data.crop_size) == (5, "collect", (64, 64))
    assert changed.test.flip is False
    assert (base.data.num_classes, base.model.psa_type, base.data.crop_size) == (19, "bi", (512, 1024))


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(crop_size=(64, 64)), ValueError, "data.crop_size"),  # in data and test
        (dict(mask=3), ValueError, "unknown config field"),
        ({"optim.lr": 0.1}, ValueError, "unknown config section"),
        ({"model.lr": 0.1}, ValueError, "no field 'lr'"),
        (dict(model=3), TypeError, "dict"),
        (dict(backbone="vgg"), ValueError, "backbone"),
        (dict(decode_head="aspp"), ValueError, "decode_head"),
        (dict(batch_size=7), ValueError, "multiple"),
        (dict(num_classes=0), ValueError, "num_classes"),
        (dict(mode="tiles"), ValueError, "test.mode"),
    ],
)
def test_bad_overrides_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        get_config("psanet_r50-d8_512x1024_40k_cityscapes").replace(**overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="psanet_lite_context"):
        get_config("psanet_r18")
    with pytest.raises(TypeError):
        get_config(3)


def test_unknown_preset_suggests_the_closest_name_first():
    # a typo: '_' for '-'
    with pytest.raises(ValueError, match="did you mean 'psanet_r101-d8_512x1024_80k_cityscapes' or"):
        get_config("psanet_r101_d8_512x1024_80k_cityscapes")
    with pytest.raises(ValueError) as error:
        get_config("psanet_r18")
    assert "did you mean" not in str(error.value)


@pytest.mark.parametrize("name", ["psanet_r101-d8_769x769_80k_cityscapes", "psanet_lite_context"])
def test_dict_and_json_round_trip(name):
    config = get_config(name)
    assert Config.from_dict(config.to_dict()) == config
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown"):
        Config.from_dict({**config.to_dict(), "optimizer": {}})


def test_train_config_gpus():
    assert TrainConfig(batch_size=16, batch_per_gpu=4).gpus == 4


@pytest.mark.parametrize("override, message", [
    ({"train.batch_size": 0}, "train.batch_size must be >= 1, got 0"),
    ({"train.iterations": 2.5}, "train.iterations must be an integer, got 2.5"),
    ({"train.iterations": True}, "train.iterations must be an integer, got True"),
    ({"train.lr": "fast"}, "train.lr must be a finite number, got 'fast'"),
    ({"train.optimizer": "adam"}, "train.optimizer must be one of ('sgd',), got 'adam'"),
    ({"model.mask_size": (31, 31, 31)}, "model.mask_size must be a tuple of 2 integers"),
    ({"model.fcn_channels": 0}, "model.fcn_channels must be >= 1, got 0"),
    ({"model.dropout": 1.0}, "model.dropout must be < 1, got 1.0"),
    ({"model.backbone": "vgg"}, "model.backbone must be one of ('resnetv1c', 'torchvision', 'lite'), got 'vgg'"),
    ({"data.ratio_range": (2.0, 0.5)}, "data.ratio_range must be (low, high) with low <= high"),
    ({"test.ms_ratios": ()}, "test.ms_ratios must be a tuple of numbers"),
    ({"test.mode": "tiles"}, "test.mode must be one of ('whole', 'slide'), got 'tiles'"),
    ({"name": 3}, "config.name must be a string, got 3"),
])
def test_every_field_is_checked_when_the_config_is_made(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_config("psanet_lite_context").replace(**override)


def test_old_config_dicts_still_read():
    # as a checkpoint stores them: lists for tuples (after JSON), ints where floats are meant
    stored = json.loads(json.dumps(get_config("psanet_lite_context").to_dict()))
    stored["train"]["lr"], stored["model"]["normalization_factor"] = 1, None
    config = Config.from_dict(stored)
    assert config.data.crop_size == (128, 128) and config.test.ms_ratios[0] == 0.5
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.model.normalization_factor is None and config.model.fcn_channels is None
