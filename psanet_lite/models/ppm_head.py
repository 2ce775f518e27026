"""Pyramid pooling (PSPNet, Zhao et al. 2017): averages over 1x1, 2x2, 3x3 and 6x6 grids of bins.

Each bin size pools the stage-4 map into a coarse grid, reduces it with a 1x1
ConvBNReLU and resizes it back (bilinear); the four maps are concatenated with the input.
A position receives the summary of the bins it falls in: coarse, fixed regions around
it, the same for every position of a bin whatever the position itself looks like.
"""

import torch
import torch.nn.functional as F
from torch import nn

from psanet_lite.models.context_fusion import ContextFusionHead
from psanet_lite.models.conv_bn_relu import ConvBNReLU

BINS = (1, 2, 3, 6)


class PPMHead(ContextFusionHead):
    """Pyramid pooling module head.

    Args:
        in_channels, channels, num_classes, dropout: see ContextFusionHead; each bin
            size is reduced to `channels`.
        bins: grid sizes of the pyramid (PSPNet's 1, 2, 3, 6).
        align_corners: for resizing the pooled maps.

    Input [N, in_channels, H, W] -> logits [N, num_classes, H, W].

    Example:
        >>> head = PPMHead(64, 16, num_classes=4)
        >>> head(torch.randn(2, 64, 12, 12)).shape
        torch.Size([2, 4, 12, 12])
    """

    def __init__(self, in_channels, channels, num_classes, dropout=0.1, bins=BINS, align_corners=False):
        if not bins or not all(isinstance(b, int) and b >= 1 for b in bins):
            raise ValueError(f"PPMHead: bins must be positive ints, got {bins!r}")
        super().__init__(in_channels, channels * len(bins), channels, num_classes, dropout)
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNReLU(in_channels, channels, 1)) for b in bins
        )

    def context(self, x):
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=self.align_corners)  # [N, C, H, W]
            for stage in self.stages
        ]
        return torch.cat(pooled, dim=1)  # [N, C * len(bins), H, W]
