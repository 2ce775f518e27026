"""Non-local context (Wang et al. 2018, embedded Gaussian): self-attention without positions.

Every position s gathers from every position t with the weight

    A[s, t] = softmax_t( theta(x_s) . phi(x_t) / sqrt(C) ),  y_s = sum_t A[s, t] g(x_t),

where theta, phi and g are 1x1 convolutions. The weight depends on what s and t look
like, never on where t is relative to s: the opposite of PSA, whose mask is indexed by
the relative position and predicted from s alone (Sec. 2 of the PSANet paper).
"""

import math

import torch
from torch import nn

from psanet_lite.models.context_fusion import ContextFusionHead
from psanet_lite.models.conv_bn_relu import ConvBNReLU


class NonLocalHead(ContextFusionHead):
    """Embedded-Gaussian non-local head, no position encoding.

    Args:
        in_channels, channels, num_classes, dropout: see ContextFusionHead; theta, phi
            and g embed to `channels`.

    Input [N, in_channels, H, W] -> logits [N, num_classes, H, W].

    Example:
        >>> head = NonLocalHead(64, 16, num_classes=4)
        >>> head(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
        >>> head.attention(torch.randn(2, 64, 8, 8)).shape  # rows: receiving position s
        torch.Size([2, 64, 64])
    """

    def __init__(self, in_channels, channels, num_classes, dropout=0.1):
        super().__init__(in_channels, channels, channels, num_classes, dropout)
        self.theta = nn.Conv2d(in_channels, channels, 1)
        self.phi = nn.Conv2d(in_channels, channels, 1)
        self.g = nn.Conv2d(in_channels, channels, 1)
        self.project = ConvBNReLU(channels, channels, 1)

    def attention(self, x):
        """Softmaxed weights [N, HW, HW]: entry [n, s, t] is the share of t in position s's output."""
        query = self.theta(x).flatten(2)  # [N, C, HW]
        key = self.phi(x).flatten(2)  # [N, C, HW]
        logits = torch.bmm(query.transpose(1, 2), key) / math.sqrt(query.shape[1])  # [N, HW(s), HW(t)]
        return logits.softmax(dim=-1)

    def attention_maps(self, x=None):
        """{'non-local': [N, HW, H, W]} of the stage-4 map `x`, laid out as PSAHead.attention_maps:
        entry [n, t, y, x] is the weight of source position t in the output at (y, x).

        Example:
            >>> head = NonLocalHead(64, 16, num_classes=4)
            >>> head.attention_maps(torch.randn(2, 64, 8, 8))["non-local"].shape
            torch.Size([2, 64, 8, 8])
        """
        if x is None:
            raise ValueError("NonLocalHead records no attention: pass the stage-4 map (or call PSANet.attention_maps(images))")
        weights = self.attention(x)  # [N, HW(s), HW(t)]
        return {"non-local": weights.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[-2:])}

    def context(self, x):
        value = self.g(x).flatten(2)  # [N, C, HW]
        gathered = torch.bmm(value, self.attention(x).transpose(1, 2))  # [N, C, HW(s)]
        return self.project(gathered.view(*value.shape[:2], *x.shape[-2:]))  # [N, C, H, W]
