"""Convolution -> BatchNorm -> ReLU, the unit every head of PSANet is built from.

The submodule names `conv` and `bn` are the ones mmsegmentation's ConvModule uses, so a
published checkpoint maps onto this block without renaming its leaves. The convolution
has no bias: the BatchNorm after it has its own shift.
"""

from torch import nn


class ConvBNReLU(nn.Sequential):
    """`kernel_size` convolution without bias, BatchNorm2d, ReLU.

    Input [N, in_channels, H, W] -> output [N, out_channels, H', W'] with
    H' = H + 2*padding - kernel_size + 1 (stride 1).

    Example:
        >>> block = ConvBNReLU(16, 8, kernel_size=3, padding=1)
        >>> block(torch.randn(2, 16, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, in_channels, out_channels, kernel_size=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
