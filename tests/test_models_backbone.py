"""Backbones: ResNetV1c-D8 structure (stem, strides, contracted dilation), torchvision, lite."""

import pytest
import torch
import torchvision
from torch import nn

from psanet_lite.checkpoint import CheckpointMismatchError, load_backbone_weights
from psanet_lite.models import ResNetV1c, TorchvisionResNet, resnet_lite


def _blocks(backbone):
    """(stage, block index, conv2 stride, conv2 dilation, conv2 padding) for every bottleneck."""
    rows = []
    for stage in range(1, 5):
        for index, block in enumerate(getattr(backbone, f"layer{stage}")):
            rows.append((stage, index, block.conv2.stride[0], block.conv2.dilation[0], block.conv2.padding[0]))
    return rows


def _on_meta(make, *args, **kwargs):
    with torch.device("meta"):  # structure only: no weights to initialise
        return make(*args, **kwargs)


@pytest.fixture(scope="module")
def r50():
    return ResNetV1c(depth=50).eval()


def test_resnet_v1c_deep_stem():
    stem = _on_meta(ResNetV1c, depth=50).stem
    convs = [m for m in stem if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 32, (3, 3), (2, 2)),
        (32, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]


@pytest.mark.parametrize("depth, blocks", [(50, (3, 4, 6, 3)), (101, (3, 4, 23, 3))])
def test_resnet_v1c_strides_and_contracted_dilation(depth, blocks):
    rows = _blocks(_on_meta(ResNetV1c, depth=depth))
    assert [sum(1 for r in rows if r[0] == s) for s in range(1, 5)] == list(blocks)
    for stage, index, stride, dilation, padding in rows:
        # strides (1, 2, 1, 1) on the first block; dilations (1, 1, 2, 4), first block of a
        # dilated stage at half; the 3x3 padding equals the dilation (size kept).
        expected_stride = 2 if (stage, index) == (2, 0) else 1
        expected_dilation = {1: 1, 2: 1, 3: 2, 4: 4}[stage]
        if index == 0 and expected_dilation > 1:
            expected_dilation //= 2
        assert (stride, dilation, padding) == (expected_stride, expected_dilation, expected_dilation)


def test_resnet_v1c_downsample_is_strided_conv_and_bn():
    backbone = _on_meta(ResNetV1c, depth=50)
    down = backbone.layer2[0].downsample
    assert isinstance(down[0], nn.Conv2d) and isinstance(down[1], nn.BatchNorm2d) and len(down) == 2
    assert down[0].stride == (2, 2) and down[0].kernel_size == (1, 1)
    assert backbone.layer3[0].downsample[0].stride == (1, 1)
    assert all(block.downsample is None for block in list(backbone.layer4)[1:])


@pytest.mark.parametrize("size, expected", [(64, 8), (65, 9), (97, 13)])
def test_resnet_v1c_output_stride_8(r50, size, expected):
    with torch.no_grad():
        stage3, stage4 = r50(torch.randn(1, 3, size, size))
    assert stage3.shape == (1, 1024, expected, expected)
    assert stage4.shape == (1, 2048, expected, expected)
    assert r50.out_channels == (1024, 2048) and r50.output_stride == 8


def test_torchvision_backbone_has_the_same_dilation_pattern():
    for depth in (50, 101):
        assert _blocks(_on_meta(TorchvisionResNet, depth)) == _blocks(_on_meta(ResNetV1c, depth=depth))


def test_torchvision_backbone_loads_torchvision_weights_from_disk(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]).eval()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    backbone = TorchvisionResNet(50).eval()
    load_backbone_weights(backbone, path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stage3, stage4 = backbone(x)
        y = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        y = reference.layer3(reference.layer2(reference.layer1(y)))
        torch.testing.assert_close(stage3, y)
        torch.testing.assert_close(stage4, reference.layer4(y))


def test_backbone_weights_of_the_wrong_depth_are_listed(tmp_path):
    path = tmp_path / "resnet101.pth"
    torch.save(torchvision.models.resnet101(weights=None).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="unexpected key"):
        load_backbone_weights(TorchvisionResNet(50), path)


def test_resnet_v1c_loads_mmseg_imagenet_weights_by_stem_index(tmp_path):
    source = ResNetV1c(depth=50)
    renamed = {}
    for key, value in source.state_dict().items():
        for ours, theirs in (("stem.conv1", "stem.0"), ("stem.bn1", "stem.1"), ("stem.conv2", "stem.3"),
                             ("stem.bn2", "stem.4"), ("stem.conv3", "stem.6"), ("stem.bn3", "stem.7")):
            key = key.replace(ours + ".", theirs + ".")
        renamed[key] = value + 1.0 if value.is_floating_point() else value
    renamed["fc.weight"] = torch.zeros(1000, 2048)  # ImageNet classifier: dropped
    path = tmp_path / "resnet50_v1c.pth"
    torch.save({"state_dict": renamed}, path)
    target = ResNetV1c(depth=50)
    load_backbone_weights(target, path)
    torch.testing.assert_close(target.stem.conv2.weight, source.stem.conv2.weight + 1.0)
    torch.testing.assert_close(target.layer4[2].bn3.bias, source.layer4[2].bn3.bias + 1.0)


def test_lite_backbone_is_small_with_output_stride_8():
    backbone = resnet_lite()
    assert sum(p.numel() for p in backbone.parameters()) < 500_000
    stage3, stage4 = backbone(torch.randn(2, 3, 128, 96))
    assert stage3.shape == (2, 128, 16, 12) and stage4.shape == (2, 256, 16, 12)
    assert backbone.out_channels == (128, 256) and backbone.output_stride == 8


def test_backbones_accept_other_channel_counts():
    for backbone in (ResNetV1c(depth=50, in_channels=4), TorchvisionResNet(50, in_channels=4), resnet_lite(1)):
        backbone.eval()
        with torch.no_grad():
            _, stage4 = backbone(torch.randn(1, backbone.in_channels, 32, 32))
        assert stage4.shape[-2:] == (4, 4)


def test_unknown_depth_is_a_value_error():
    with pytest.raises(ValueError, match="depth"):
        ResNetV1c(depth=34)
    with pytest.raises(ValueError, match="depth"):
        TorchvisionResNet(18)
