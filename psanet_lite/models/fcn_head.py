"""FCN head (Long et al. 2015): a few convolutions and a per-pixel classifier.

PSANet uses it twice:
- as the auxiliary head on stage 3 (one 3x3 conv 1024->256, dropout 0.1, 1x1 classifier),
  whose loss (weight 0.4) helps optimise the deep backbone during training only;
- as the no-attention baseline decode head for ablations (mmsegmentation's FCN layout:
  two 3x3 convs, the input concatenated back in, a third 3x3 conv), with its width chosen
  by `matching_fcn_channels` so it has as many parameters as the PSA head it replaces.
"""

import math

import torch
from torch import nn

from psanet_lite.models.conv_bn_relu import ConvBNReLU


class FCNHead(nn.Module):
    """`num_convs` 3x3 ConvBNReLU, optional concat of the input, Dropout2d, 1x1 classifier.

    Args:
        in_channels: channels of the feature map.
        channels: width of the hidden convolutions.
        num_classes: output channels.
        num_convs: hidden 3x3 convolutions (>= 1).
        concat_input: concatenate the input with the hidden features and fuse them
            with one more 3x3 ConvBNReLU (`conv_cat`) before classifying.
        dropout: Dropout2d probability before the classifier (0 disables it).

    Input [N, in_channels, H, W] -> logits [N, num_classes, H, W].

    Example:
        >>> head = FCNHead(1024, 256, num_classes=19)
        >>> head(torch.randn(2, 1024, 8, 8)).shape
        torch.Size([2, 19, 8, 8])
    """

    def __init__(self, in_channels, channels, num_classes, num_convs=1, concat_input=False, dropout=0.1):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"num_convs must be at least 1, got {num_convs!r}")
        widths = [in_channels] + [channels] * num_convs
        self.convs = nn.Sequential(*(ConvBNReLU(a, b, 3, padding=1) for a, b in zip(widths, widths[1:])))
        self.conv_cat = ConvBNReLU(in_channels + channels, channels, 3, padding=1) if concat_input else None
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        out = self.convs(x)  # [N, channels, H, W]
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))  # [N, channels, H, W]
        return self.classifier(self.dropout(out))  # [N, num_classes, H, W]


def fcn_head_parameters(in_channels, channels, num_classes, num_convs=2, concat_input=True):
    """Parameter count of FCNHead (convs without bias + BN weight/bias, classifier with bias).

    >>> fcn_head_parameters(1024, 256, 19, num_convs=1, concat_input=False)
    2364691
    """
    count = 9 * in_channels * channels + 2 * channels
    count += (num_convs - 1) * (9 * channels * channels + 2 * channels)
    if concat_input:
        count += 9 * (in_channels + channels) * channels + 2 * channels
    return count + channels * num_classes + num_classes


def matching_fcn_channels(target_parameters, in_channels, num_classes, multiple_of=8):
    """Width of the baseline FCN head (2 convs, concat_input) whose size is closest to a target.

    Solves the quadratic parameter count for the width, then tries the neighbouring
    multiples of `multiple_of` and keeps the closest.

    >>> c = matching_fcn_channels(33_000_000, 2048, 19)
    >>> abs(fcn_head_parameters(2048, c, 19) - 33_000_000) / 33_000_000 < 0.01
    True
    """
    # 18 c^2 + (18 in + 6 + K) c + K = target  (see fcn_head_parameters with 2 convs + concat)
    a, b, c = 18.0, 18.0 * in_channels + 6.0 + num_classes, num_classes - float(target_parameters)
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    base = max(multiple_of, int(root) // multiple_of * multiple_of)
    candidates = (base, base + multiple_of)
    return min(candidates, key=lambda w: abs(fcn_head_parameters(in_channels, w, num_classes) - target_parameters))
