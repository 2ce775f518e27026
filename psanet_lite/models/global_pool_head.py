"""Image-level context (ParseNet, Liu et al. 2015; the 1x1 bin of PSPNet): one pooled vector.

The global average of the stage-4 map, reduced by a 1x1 ConvBNReLU, is copied to every
position and concatenated with the local features. Every position receives the same
summary of the whole scene, wherever it is: context without position.
"""

from torch import nn

from psanet_lite.models.context_fusion import ContextFusionHead
from psanet_lite.models.conv_bn_relu import ConvBNReLU


class GlobalPoolHead(ContextFusionHead):
    """Global-average-pooling context head: the arguments are ContextFusionHead's, and the
    pooled vector is reduced to `channels`. Input [N, in_channels, H, W] -> logits
    [N, num_classes, H, W].

    Example:
        >>> head = GlobalPoolHead(64, 16, num_classes=4)
        >>> head(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, in_channels, channels, num_classes, dropout=0.1):
        super().__init__(in_channels, channels, channels, num_classes, dropout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = ConvBNReLU(in_channels, channels, 1)

    def context(self, x):
        pooled = self.reduce(self.pool(x))  # [N, C, 1, 1]
        return pooled.expand(-1, -1, *x.shape[-2:])  # [N, C, H, W]
