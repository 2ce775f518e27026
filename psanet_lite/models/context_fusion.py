"""The layout the context heads share: a context map, concatenated with the input, fused, classified.

PSANet (Sec. 4 of the paper) and PSPNet end the same way: whatever the context module
computes is concatenated with the stage-4 features, a 3x3 ConvBNReLU fuses the two and
a 1x1 convolution classifies each position. The related-work heads of the ablation
(global pooling, pyramid pooling, non-local) differ only in the context module, so they
subclass ContextFusionHead and define `context`.

    x [N, Cin, H, W] -> context(x) [N, Cc, H, W]
      -> cat -> fuse (3x3) [N, C, H, W] -> dropout -> classifier [N, K, H, W]
"""

import torch
from torch import nn

from psanet_lite.models.conv_bn_relu import ConvBNReLU


class ContextFusionHead(nn.Module):
    """Base of the context heads: subclasses set up their layers and implement `context`.

    Args:
        in_channels: channels of the backbone's stage-4 map.
        context_channels: channels `context` returns.
        channels: width of the fusing convolution.
        num_classes: output channels of the classifier.
        dropout: Dropout2d probability before the classifier (0 disables it).

    Input [N, in_channels, H, W] -> logits [N, num_classes, H, W].
    """

    def __init__(self, in_channels, context_channels, channels, num_classes, dropout=0.1):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("channels", channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.in_channels = in_channels
        self.fuse = ConvBNReLU(in_channels + context_channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def context(self, x):
        """[N, in_channels, H, W] -> [N, context_channels, H, W]."""
        raise NotImplementedError

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects features [N, {self.in_channels}, H, W], "
                             f"got shape {tuple(x.shape)}")
        out = self.fuse(torch.cat([x, self.context(x)], dim=1))  # [N, C, H, W]
        return self.classifier(self.dropout(out))  # [N, K, H, W]
