"""mmsegmentation checkpoints: key map, shapes, round trip, errors, and parameter counts.

mmseg_psanet_shapes() below lists the keys and shapes of an mmsegmentation PSANet state
dict by following mmsegmentation's constructors (ResNetV1c with ResLayer/Bottleneck,
PSAHead, FCNHead, ConvModule naming), independently of psanet_lite's model code.
"""

import pickle

import pytest
import torch

from psanet_lite.build import build_model, model_from_config
from psanet_lite.checkpoint import (
    CheckpointMismatchError,
    UntrustedCheckpointError,
    export_mmseg,
    load_mmseg,
)
from psanet_lite.configs import get_config

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def mmseg_psanet_shapes(depth=50, num_classes=19, mask=(97, 97), psa_type="bi-direction", stem=64, base=64,
                        stage_blocks=None, channels=512, aux_channels=256):
    """{key: shape} of mmsegmentation's EncoderDecoder(ResNetV1c, PSAHead, FCNHead) state dict."""
    shapes = {}

    def conv(name, cin, cout, k, bias=False):
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{name}.bias"] = (cout,)

    def bn(name, c):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{leaf}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    def conv_module(name, cin, cout, k):  # ConvModule: conv (bias='auto' -> none with BN) + bn
        conv(f"{name}.conv", cin, cout, k)
        bn(f"{name}.bn", cout)

    # ResNet._make_stem_layer with deep_stem=True: conv, bn, relu, conv, bn, relu, conv, bn, relu
    conv("backbone.stem.0", 3, stem // 2, 3)
    bn("backbone.stem.1", stem // 2)
    conv("backbone.stem.3", stem // 2, stem // 2, 3)
    bn("backbone.stem.4", stem // 2)
    conv("backbone.stem.6", stem // 2, stem, 3)
    bn("backbone.stem.7", stem)
    # ResLayer per stage: downsample (conv1x1 + bn, avg_down=False) on the first block when
    # stride != 1 or inplanes != planes * 4; Bottleneck conv1/bn1/conv2/bn2/conv3/bn3.
    blocks = stage_blocks or {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    inplanes = stem
    for i, (n, stride) in enumerate(zip(blocks, (1, 2, 1, 1))):
        planes = base * 2**i
        for b in range(n):
            prefix = f"backbone.layer{i + 1}.{b}"
            conv(f"{prefix}.conv1", inplanes, planes, 1)
            bn(f"{prefix}.bn1", planes)
            conv(f"{prefix}.conv2", planes, planes, 3)
            bn(f"{prefix}.bn2", planes)
            conv(f"{prefix}.conv3", planes, planes * 4, 1)
            bn(f"{prefix}.bn3", planes * 4)
            if b == 0 and (stride != 1 or inplanes != planes * 4):
                conv(f"{prefix}.downsample.0", inplanes, planes * 4, 1)
                bn(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    in_channels = inplanes
    # PSAHead
    mh, mw = mask
    suffixes = ("", "_p") if psa_type == "bi-direction" else ("",)
    for suffix in suffixes:
        conv_module(f"decode_head.reduce{suffix}", in_channels, channels, 1)
        conv_module(f"decode_head.attention{suffix}.0", channels, channels, 1)
        conv(f"decode_head.attention{suffix}.1", channels, mh * mw, 1)
    conv_module("decode_head.proj", channels * len(suffixes), in_channels, 1)
    conv_module("decode_head.bottleneck", in_channels * 2, channels, 3)
    conv("decode_head.conv_seg", channels, num_classes, 1, bias=True)
    # FCNHead(num_convs=1, concat_input=False) on stage 3
    conv_module("auxiliary_head.convs.0", in_channels // 2, aux_channels, 3)
    conv("auxiliary_head.conv_seg", aux_channels, num_classes, 1, bias=True)
    return shapes


def _parameter_count(shapes):
    return sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(BN_BUFFERS))


def _on_meta(name):
    with torch.device("meta"):
        return model_from_config(get_config(name))


def _random_state(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


@pytest.fixture(scope="module")
def r50():
    return build_model("psanet_r50-d8_512x1024_40k_cityscapes")


def test_export_has_exactly_mmsegmentations_keys_and_shapes(r50):
    exported = export_mmseg(r50)
    assert set(exported) == {"state_dict", "meta"}
    got = {k: tuple(v.shape) for k, v in exported["state_dict"].items()}
    assert got == mmseg_psanet_shapes(50, 19, (97, 97))


# Parameter counts of mmsegmentation's models (reported in the README).
@pytest.mark.parametrize(
    "name, depth, classes, mask",
    [
        ("psanet_r50-d8_512x1024_40k_cityscapes", 50, 19, (97, 97)),
        ("psanet_r101-d8_512x1024_40k_cityscapes", 101, 19, (97, 97)),
        ("psanet_r50-d8_769x769_80k_cityscapes", 50, 19, (97, 97)),
        ("psanet_r50-d8_512x512_80k_ade20k", 50, 150, (66, 66)),
        ("psanet_r101-d8_512x512_160k_ade20k", 101, 150, (66, 66)),
        ("psanet_r50-d8_512x512_20k_voc12aug", 50, 21, (97, 97)),
        ("psanet_r101-d8_512x512_40k_voc12aug", 101, 21, (97, 97)),
    ],
)
def test_parameter_count_equals_mmsegmentations(name, depth, classes, mask):
    model = _on_meta(name)
    expected = mmseg_psanet_shapes(depth, classes, mask)
    assert sum(p.numel() for p in model.parameters()) == _parameter_count(expected)
    assert len(model.state_dict()) == len(expected)


def test_load_mmseg_places_every_tensor_by_name(r50):
    state = _random_state(mmseg_psanet_shapes(50, 19, (97, 97)))
    meta = load_mmseg(r50, {"state_dict": state, "meta": {"iter": 40000}})
    assert meta == {"iter": 40000}
    pairs = [
        (r50.backbone.stem.conv2.weight, "backbone.stem.3.weight"),
        (r50.backbone.stem.bn3.running_var, "backbone.stem.7.running_var"),
        (r50.backbone.layer3[0].downsample[1].bias, "backbone.layer3.0.downsample.1.bias"),
        (r50.decode_head.collect.reduce.conv.weight, "decode_head.reduce.conv.weight"),
        (r50.decode_head.distribute.reduce.bn.weight, "decode_head.reduce_p.bn.weight"),
        (r50.decode_head.distribute.attention[1].weight, "decode_head.attention_p.1.weight"),
        (r50.decode_head.project.conv.weight, "decode_head.proj.conv.weight"),
        (r50.decode_head.fuse.bn.running_mean, "decode_head.bottleneck.bn.running_mean"),
        (r50.decode_head.classifier.bias, "decode_head.conv_seg.bias"),
        (r50.aux_head.convs[0].conv.weight, "auxiliary_head.convs.0.conv.weight"),
        (r50.aux_head.classifier.weight, "auxiliary_head.conv_seg.weight"),
    ]
    for tensor, key in pairs:
        torch.testing.assert_close(tensor.detach(), state[key], msg=key)
    r50.eval()
    with torch.no_grad():
        out = r50(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 19, 64, 64) and torch.isfinite(out).all()


def test_export_then_load_is_exact_and_gives_the_same_output(tmp_path):
    torch.manual_seed(0)
    source = build_model("psanet_lite_context").eval()
    path = tmp_path / "mmseg.pth"
    export_mmseg(source, path, meta={"note": "test"})
    target = build_model("psanet_lite_context").eval()
    assert load_mmseg(target, path) == {"note": "test"}
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    from_file = build_model("psanet_lite_context", checkpoint=path).eval()
    with torch.no_grad():
        assert torch.equal(source(x), from_file(x))


def test_lite_export_follows_mmsegmentation_construction():
    model = build_model("psanet_lite_context")
    got = {k: tuple(v.shape) for k, v in export_mmseg(model)["state_dict"].items()}
    expected = mmseg_psanet_shapes(stem=16, base=8, stage_blocks=(1, 1, 1, 1), num_classes=4, mask=(31, 31),
                                   channels=64, aux_channels=32)
    assert got == expected


def test_single_direction_heads_use_the_unsuffixed_names():
    for psa_type in ("collect", "distribute"):
        model = build_model("psanet_lite_context", psa_type=psa_type)
        got = {k: tuple(v.shape) for k, v in export_mmseg(model)["state_dict"].items()}
        expected = mmseg_psanet_shapes(stem=16, base=8, stage_blocks=(1, 1, 1, 1), num_classes=4, mask=(31, 31),
                                       channels=64, aux_channels=32, psa_type=psa_type)
        assert got == expected
        load_mmseg(model, export_mmseg(model))


def _lite_state():
    return export_mmseg(build_model("psanet_lite_context"))["state_dict"]


def test_missing_unexpected_and_mismatched_keys_are_all_listed():
    state = _lite_state()
    del state["decode_head.reduce_p.conv.weight"]
    state["decode_head.extra.weight"] = torch.zeros(1)
    state["decode_head.conv_seg.weight"] = torch.zeros(19, 64, 1, 1)
    with pytest.raises(CheckpointMismatchError) as info:
        load_mmseg(build_model("psanet_lite_context"), state)
    message = str(info.value)
    assert "1 missing key(s): decode_head.reduce_p.conv.weight" in message
    assert "1 unexpected key(s): decode_head.extra.weight" in message
    assert "decode_head.conv_seg.weight: file (19, 64, 1, 1) vs model (4, 64, 1, 1)" in message
    assert info.value.missing == ["decode_head.reduce_p.conv.weight"]


def test_a_failed_load_leaves_the_model_untouched():
    model = build_model("psanet_lite_context")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {k: v + 1 if v.is_floating_point() else v for k, v in _lite_state().items()}
    state["decode_head.conv_seg.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointMismatchError):
        load_mmseg(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_class_count_is_a_shape_error_through_build_model(tmp_path):
    path = tmp_path / "voc.pth"
    torch.save(export_mmseg(build_model("psanet_lite_context", num_classes=21)), path)
    with pytest.raises(CheckpointMismatchError, match="conv_seg"):
        build_model("psanet_lite_context", checkpoint=path)
    assert build_model("psanet_lite_context", checkpoint=path, num_classes=21).decode_head.classifier.out_channels == 21


def test_torchvision_backbone_cannot_take_mmseg_weights():
    with pytest.raises(ValueError, match="ResNetV1c"):
        export_mmseg(build_model("psanet_r50-d8_512x1024_40k_cityscapes", backbone="torchvision"))


class _Payload:
    """Stands for an arbitrary pickled object in a checkpoint's metadata."""


def test_pickled_objects_need_an_explicit_opt_in(tmp_path):
    path = tmp_path / "pickled.pth"
    checkpoint = export_mmseg(build_model("psanet_lite_context"))
    checkpoint["meta"] = {"payload": _Payload()}
    torch.save(checkpoint, path)
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        load_mmseg(build_model("psanet_lite_context"), path)
    meta = load_mmseg(build_model("psanet_lite_context"), path, trust_pickle=True)
    assert isinstance(meta["payload"], _Payload)
    assert issubclass(UntrustedCheckpointError, ValueError) and not issubclass(UntrustedCheckpointError, pickle.UnpicklingError)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mmseg(build_model("psanet_lite_context"), tmp_path / "nope.pth")
