"""PSANet end to end: output API, attention maps, input checks, baseline head, FLOP counting."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from psanet_lite.build import build_model, model_from_config
from psanet_lite.configs import get_config
from psanet_lite.models import FCNHead, PSAHead, PSANetOutput
from psanet_lite.models.fcn_head import fcn_head_parameters
from psanet_lite.models.flops import count_flops


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return build_model("psanet_lite_context")


def _parameters(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [(64, 64), (65, 97), (128, 96)])
def test_eval_returns_logits_at_the_input_size(lite, size):
    lite.eval()
    with torch.no_grad():
        out = lite(torch.randn(2, 3, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, *size)


def test_train_returns_main_and_auxiliary_logits(lite):
    lite.train()
    out = lite(torch.randn(2, 3, 64, 64))
    assert isinstance(out, PSANetOutput)
    assert out.out.shape == out.aux.shape == (2, 4, 64, 64)
    loss = out.out.logsumexp(1).mean() + 0.4 * out.aux.logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in lite.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    lite.zero_grad()


def test_without_auxiliary_head_aux_is_none():
    model = build_model("psanet_lite_context", aux_head=False)
    assert model.aux_head is None
    assert model(torch.randn(2, 3, 32, 32)).aux is None


def test_attention_maps_from_images_are_column_stochastic(lite):
    lite.eval()
    maps = lite.attention_maps(torch.randn(1, 3, 64, 64))
    assert sorted(maps) == ["collect", "distribute"]
    for attention in maps.values():
        assert attention.shape == (1, 64, 8, 8)  # 64 px -> 8x8 map (shrink 1) -> 64 positions
        torch.testing.assert_close(attention.sum(1), torch.ones(1, 8, 8))
    assert lite.decode_head.record_attention is False


def test_attention_maps_of_the_last_forward_need_no_second_pass(lite):
    lite.eval()
    images = torch.randn(2, 3, 64, 64)
    with pytest.raises(RuntimeError, match="record_attention"):
        build_model("psanet_lite_context").attention_maps()
    lite.decode_head.record_attention = True
    try:
        with torch.no_grad():
            lite(images)
        calls = []
        handle = lite.backbone.register_forward_hook(lambda *args: calls.append(1))
        recorded = lite.attention_maps()
        handle.remove()
    finally:
        lite.decode_head.record_attention = False
    assert calls == []
    fresh = lite.attention_maps(images)
    for direction in ("collect", "distribute"):
        torch.testing.assert_close(recorded[direction], fresh[direction])


def test_compact_mask_must_fit_the_crop():
    with pytest.raises(ValueError, match=r"mask_size=\(16, 16\)"):
        build_model("psanet_lite_context", compact=True)  # 128 px crop -> 16x16 grid, mask 31x31
    model = build_model("psanet_lite_context", compact=True, mask_size=(16, 16)).eval()
    assert model(torch.randn(1, 3, 128, 128)).shape == (1, 4, 128, 128)


def test_collect_only_ablation_has_one_attention_map():
    model = build_model("psanet_lite_context", psa_type="collect").eval()
    assert list(model.attention_maps(torch.randn(1, 3, 32, 32))) == ["collect"]


@pytest.mark.parametrize(
    "images, error, match",
    [
        (torch.randn(2, 1, 64, 64), ValueError, "3 channels"),
        (torch.randn(3, 64, 64), ValueError, r"\[N, C, H, W\]"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.randn(1, 3, 4, 64), ValueError, "at least 8x8"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_images_are_rejected_clearly(lite, images, error, match):
    with pytest.raises(error, match=match):
        lite(images)


def test_full_model_minimum_size_is_output_stride_times_shrink():
    config = get_config("psanet_r50-d8_512x1024_40k_cityscapes")
    with torch.device("meta"):
        model = model_from_config(config)
    assert model.min_input_size == 16
    with pytest.raises(ValueError, match="at least 16x16"):
        model(torch.empty(1, 3, 15, 64, device="meta"))


def test_fcn_baseline_matches_the_psa_head_parameter_count():
    for name in ("psanet_lite_context", "psanet_r50-d8_512x1024_40k_cityscapes", "psanet_r101-d8_512x512_80k_ade20k"):
        config = get_config(name)
        with torch.device("meta"):
            psa = model_from_config(config)
            fcn = model_from_config(config.replace(decode_head="fcn"))
        assert isinstance(psa.decode_head, PSAHead) and isinstance(fcn.decode_head, FCNHead)
        head_psa, head_fcn = _parameters(psa.decode_head), _parameters(fcn.decode_head)
        assert abs(head_fcn - head_psa) / head_psa < 0.02, name
        assert abs(_parameters(fcn) - _parameters(psa)) / _parameters(psa) < 0.10, name


def test_fcn_baseline_runs_and_has_no_attention():
    model = build_model("psanet_lite_context", decode_head="fcn").eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)
    with pytest.raises(ValueError, match="no attention"):
        model.attention_maps(torch.randn(1, 3, 64, 64))


def test_fcn_parameter_formula_counts_the_built_head():
    for kwargs in (dict(num_convs=1, concat_input=False), dict(num_convs=2, concat_input=True)):
        head = FCNHead(48, 20, 7, **kwargs)
        assert fcn_head_parameters(48, 20, 7, **kwargs) == _parameters(head)


def test_torchvision_backbone_variant_builds_and_runs():
    model = build_model("psanet_r50-d8_512x1024_40k_cityscapes", backbone="torchvision").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 19, 32, 32)


def test_count_flops_equals_a_real_counted_forward(lite):
    lite.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        lite(torch.randn(1, 3, 96, 64))
    total, parts = count_flops(lite, (96, 64))
    assert total == counter.get_total_flops() > 0
    assert parts["backbone"] + parts["decode_head"] == total
    assert lite.training is False


@pytest.mark.parametrize("overrides", [{"fused": True}, {"mask_size": (5, 5)}, {"psa_type": "distribute"}])
def test_count_flops_on_meta_equals_a_real_forward_for_head_variants(overrides):
    # fused aggregation and masks smaller than the map build index maps that the meta device
    # cannot build alone; the count must still equal what a real forward executes.
    model = build_model("psanet_lite_context", **overrides).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(2, 3, 80, 64))
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    total, _ = count_flops(model, (80, 64), batch=2)
    assert total == counter.get_total_flops() > 0
    assert all(torch.equal(value, weights[name]) and value.device.type == "cpu"
               for name, value in model.state_dict().items())


def test_count_flops_keeps_the_training_mode(lite):
    lite.train()
    count_flops(lite, (64, 64))
    assert lite.training
