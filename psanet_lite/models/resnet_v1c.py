"""ResNetV1c-D8: the dilated ResNet that PSANet runs on (He et al. 2016; He et al. 2019, "Bag of Tricks").

V1c replaces ResNet's 7x7 stem convolution with three 3x3 convolutions (3->32 stride 2,
32->32, 32->64) followed by the usual 3x3 max-pool. "D8" means output stride 8: stage 2
halves the resolution once more, stages 3 and 4 keep it and dilate their 3x3
convolutions by 2 and 4 instead, so the head sees a 1/8 map (64x128 for a 512x1024 crop).

The first block of a dilated stage uses half the dilation (mmsegmentation's
`contract_dilation=True`; torchvision does the same with `replace_stride_with_dilation`):
it still sees the previous stage's sampling grid, so a gap of dilation//2 lines up.

Blocks are torchvision's Bottleneck: stride on the 3x3 convolution ("pytorch" style),
submodules conv1/bn1/conv2/bn2/conv3/bn3/downsample.{0,1}, the same names and shapes as
mmsegmentation's blocks. Only the stem needs renaming when loading its checkpoints
(see psanet_lite.checkpoint.mmseg).
"""

import math
from collections import OrderedDict

from torch import nn
from torchvision.models.resnet import Bottleneck

# Blocks per stage for each depth.
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class ResNetV1c(nn.Module):
    """Dilated ResNetV1c returning the stage-3 and stage-4 feature maps.

    Args:
        depth: 50 or 101 (ignored when `stage_blocks` is given).
        in_channels: image channels.
        stem_channels: output channels of the deep stem (its first two convs use half).
        base_channels: bottleneck width of stage 1; stage i uses base_channels * 2**i,
            and its output has 4x that.
        stage_blocks: blocks per stage; overrides `depth` (the 'lite' backbone uses (1, 1, 1, 1)).
        strides, dilations: per stage; the defaults give output stride 8.

    Input [N, in_channels, H, W] -> (stage3 [N, 16*base_channels, H/8, W/8],
    stage4 [N, 32*base_channels, H/8, W/8]) with H/8 rounded up.

    Example:
        >>> net = ResNetV1c(depth=50)
        >>> c3, c4 = net(torch.randn(1, 3, 64, 64))
        >>> c3.shape, c4.shape
        (torch.Size([1, 1024, 8, 8]), torch.Size([1, 2048, 8, 8]))
    """

    def __init__(
        self,
        depth=50,
        in_channels=3,
        stem_channels=64,
        base_channels=64,
        stage_blocks=None,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
    ):
        super().__init__()
        if stage_blocks is None:
            if depth not in STAGE_BLOCKS:
                raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}")
            stage_blocks = STAGE_BLOCKS[depth]
        if not (len(stage_blocks) == len(strides) == len(dilations) == 4):
            raise ValueError(
                "stage_blocks, strides and dilations must each have 4 entries, got "
                f"{stage_blocks!r}, {strides!r}, {dilations!r}"
            )
        half = stem_channels // 2
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
                bn1=nn.BatchNorm2d(half),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(half, half, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(half),
                relu2=nn.ReLU(inplace=True),
                conv3=nn.Conv2d(half, stem_channels, 3, padding=1, bias=False),
                bn3=nn.BatchNorm2d(stem_channels),
                relu3=nn.ReLU(inplace=True),
            )
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem_channels
        for index, (blocks, stride, dilation) in enumerate(zip(stage_blocks, strides, dilations)):
            planes = base_channels * 2**index
            stage = _make_stage(channels, planes, blocks, stride, dilation)
            self.add_module(f"layer{index + 1}", stage)
            channels = planes * Bottleneck.expansion
        # (stage-3 channels, stage-4 channels): what the auxiliary and decode heads read.
        self.out_channels = (channels // 2, channels)
        self.output_stride = 4 * math.prod(strides)
        _init_weights(self)

    def forward(self, x):
        x = self.stem(x)  # [N, stem, H/2, W/2]
        x = self.maxpool(x)  # [N, stem, H/4, W/4]
        x = self.layer1(x)  # [N, 4*base, H/4, W/4]
        x = self.layer2(x)  # [N, 8*base, H/8, W/8]
        stage3 = self.layer3(x)  # [N, 16*base, H/8, W/8], dilation 2
        stage4 = self.layer4(stage3)  # [N, 32*base, H/8, W/8], dilation 4
        return stage3, stage4


def _make_stage(in_channels, planes, blocks, stride, dilation):
    """One ResNet stage: `blocks` bottlenecks, the first one changing stride/width."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    first_dilation = dilation // 2 if dilation > 1 else dilation
    layers = [Bottleneck(in_channels, planes, stride, downsample, dilation=first_dilation)]
    layers += [Bottleneck(out_channels, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _init_weights(module):
    """He init for convolutions, BN at identity, and the last BN of each block at zero.

    Zeroing bn3 starts every residual block as the identity, which lets a deep network
    trained from scratch (the 'lite' backbone in the book) take large first steps.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)


def resnet_lite(in_channels=3):
    """The book's small backbone: ResNetV1c-D8 with one bottleneck per stage and 1/8 the width.

    Output stride 8 like the full model, stage-3 features with 128 channels and
    stage-4 features with 256; about 0.13M parameters, so PSANet trains on a CPU in
    minutes on 64-128 px images.

    Example:
        >>> c3, c4 = resnet_lite()(torch.randn(2, 3, 128, 128))
        >>> c3.shape, c4.shape
        (torch.Size([2, 128, 16, 16]), torch.Size([2, 256, 16, 16]))
    """
    return ResNetV1c(in_channels=in_channels, stem_channels=16, base_channels=8, stage_blocks=(1, 1, 1, 1))
