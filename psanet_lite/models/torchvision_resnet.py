"""torchvision's ResNet-50/101 made dilated (output stride 8), for users with its ImageNet weights.

torchvision's `replace_stride_with_dilation=[False, True, True]` turns stages 3 and 4 into
dilated stages exactly as ResNetV1c-D8 does (first block at half the dilation). The only
architectural difference from ResNetV1c is the stem: one 7x7 convolution instead of three
3x3. The module keeps torchvision's attribute names (conv1, bn1, layer1..layer4), so a
state dict of `torchvision.models.resnet50()` loads into it as is, minus `fc.*`
(psanet_lite.checkpoint.load_backbone_weights does that from a file on disk).

Nothing is ever downloaded: the network is always built with `weights=None`.
"""

import torchvision
from torch import nn

_CONSTRUCTORS = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}


class TorchvisionResNet(nn.Module):
    """Dilated torchvision ResNet returning the stage-3 and stage-4 feature maps.

    Args:
        depth: 50 or 101.
        in_channels: image channels; anything but 3 replaces the 7x7 stem convolution.

    Input [N, in_channels, H, W] -> (stage3 [N, 1024, H/8, W/8], stage4 [N, 2048, H/8, W/8]).

    Example:
        >>> net = TorchvisionResNet(50)
        >>> [t.shape[1:] for t in net(torch.randn(1, 3, 64, 64))]
        [torch.Size([1024, 8, 8]), torch.Size([2048, 8, 8])]
    """

    def __init__(self, depth=50, in_channels=3):
        super().__init__()
        if depth not in _CONSTRUCTORS:
            raise ValueError(f"depth must be one of {sorted(_CONSTRUCTORS)}, got {depth!r}")
        net = _CONSTRUCTORS[depth](weights=None, replace_stride_with_dilation=[False, True, True])
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.in_channels = in_channels
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = (1024, 2048)
        self.output_stride = 8

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [N, 64, H/4, W/4]
        x = self.layer2(self.layer1(x))  # [N, 512, H/8, W/8]
        stage3 = self.layer3(x)  # [N, 1024, H/8, W/8], dilation 2
        stage4 = self.layer4(stage3)  # [N, 2048, H/8, W/8], dilation 4
        return stage3, stage4
