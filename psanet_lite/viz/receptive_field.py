"""Receptive fields: the theoretical one by arithmetic, the effective one by gradients.

Theoretical (per axis): a stack of layers with kernel k, stride s, dilation d and
padding p maps output unit i to the input window centred on start + i * jump and
size wide, where, layer by layer (starting from size = jump = 1, start = 0),

    size  += (d * (k - 1)) * jump
    start += (d * (k - 1) / 2 - p) * jump
    jump  *= s

Effective (Luo et al., NIPS 2016): the gradient of one output unit with respect to
the input, |d y[:, :, i, j] / d x| summed over channels and averaged over inputs.
It is non-zero only inside the theoretical window, but most of its mass sits in a
much smaller, roughly Gaussian region around the centre.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# Layers that change nothing spatially: skipped when reading a layer list off a model.
_POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid,
              nn.Identity, nn.Dropout, nn.Dropout2d, nn.GroupNorm)


@dataclass(frozen=True)
class ReceptiveField:
    """Where output units look in the input, along one axis (square layers: both axes).

    size: input pixels one output unit depends on; jump: input pixels between two
    neighbouring output units; start: input coordinate of output unit 0's centre.
    """

    size: int
    jump: int
    start: float

    def center(self, index):
        """Input coordinate of the centre of output unit `index`."""
        return self.start + index * self.jump

    def box(self, row, col):
        """The window of output unit (row, col) as (top, left, bottom, right), inclusive
        input pixel coordinates; it may reach outside the image (into the padding)."""
        half = (self.size - 1) / 2
        return (self.center(row) - half, self.center(col) - half,
                self.center(row) + half, self.center(col) + half)


def _pair_value(value, what, layer):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"only square layers are supported, got {what}={value} in {layer}")
        value = value[0]
    return value


def _layer_specs(model):
    """(kernel, stride, dilation, padding) of each spatial layer of a plain nn.Sequential."""
    specs = []
    for module in model.children():
        if isinstance(module, nn.Sequential):
            specs += _layer_specs(module)
        elif isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel = _pair_value(module.kernel_size, "kernel_size", module)
            stride = _pair_value(module.stride, "stride", module)
            dilation = _pair_value(getattr(module, "dilation", 1), "dilation", module)
            padding = _pair_value(module.padding, "padding", module)
            if isinstance(padding, str):
                raise ValueError(f"padding={padding!r} is not supported, give it as a number in {module}")
            specs.append((kernel, stride, dilation, padding))
        elif not isinstance(module, _POINTWISE):
            raise ValueError(
                f"cannot read the receptive field through {type(module).__name__}: give the "
                "layers of the longest path as (kernel, stride, dilation, padding) tuples"
            )
    return specs


def theoretical_receptive_field(layers):
    """Receptive field of a chain of layers, by the arithmetic in the module docstring.

    Args:
        layers: an nn.Sequential of Conv2d / MaxPool2d / AvgPool2d and point-wise
            layers, or a list of (kernel, stride, dilation, padding) tuples (for
            networks with branches, such as ResNets, list the longest path).

    Returns:
        ReceptiveField(size, jump, start).

    Example:
        >>> theoretical_receptive_field([(3, 1, 1, 1)] * 2)
        ReceptiveField(size=5, jump=1, start=0.0)
        >>> theoretical_receptive_field([(3, 2, 1, 1), (3, 1, 2, 2)])
        ReceptiveField(size=11, jump=2, start=0.0)
    """
    specs = _layer_specs(layers) if isinstance(layers, nn.Module) else list(layers)
    size, jump, start = 1, 1, 0.0
    for spec in specs:
        if len(spec) != 4 or any(isinstance(v, bool) or int(v) != v for v in spec):
            raise ValueError(f"each layer must be (kernel, stride, dilation, padding) ints, got {spec!r}")
        kernel, stride, dilation, padding = (int(v) for v in spec)
        if kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
            raise ValueError(f"layer {spec!r} needs kernel, stride, dilation >= 1 and padding >= 0")
        reach = dilation * (kernel - 1)  # input span of the kernel minus one, in this layer's input units
        size += reach * jump
        start += (reach / 2 - padding) * jump
        jump *= stride
    return ReceptiveField(size=size, jump=jump, start=start)


def gradient_receptive_field(model, inputs, positions):
    """Effective receptive field: input-gradient maps of chosen output positions.

    Args:
        model: maps [N, C, H, W] to a tensor [N, C', H', W'] (put it in eval() mode so
            batch statistics do not mix the samples).
        inputs: [N, C, H, W] tensor; the maps are averaged over the N samples.
        positions: (row, col) output positions, P of them.

    Returns:
        [P, H, W] float tensor: mean over samples of ``|d sum_c y[n, c, row, col] / d x[n]|``
        summed over input channels.

    Example:
        >>> conv = nn.Conv2d(1, 1, 3, padding=1)
        >>> g = gradient_receptive_field(conv, torch.randn(2, 1, 8, 8), [(4, 4)])
        >>> g.shape, int((g[0] > 0).sum())
        (torch.Size([1, 8, 8]), 9)
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
        raise ValueError(f"inputs must be a [N, C, H, W] tensor, got {getattr(inputs, 'shape', type(inputs))}")
    positions = [tuple(int(v) for v in p) for p in positions]
    if not positions or any(len(p) != 2 for p in positions):
        raise ValueError(f"positions must be a non-empty list of (row, col) pairs, got {positions!r}")
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = model(x)  # (N, C', H', W')
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            raise TypeError(f"model must return a [N, C', H', W'] tensor, got {type(y).__name__}")
        height, width = y.shape[2:]
        maps = []
        for row, col in positions:
            if not (0 <= row < height and 0 <= col < width):
                raise ValueError(f"position {(row, col)} lies outside the {height}x{width} output")
            (grad,) = torch.autograd.grad(y[:, :, row, col].sum(), x, retain_graph=True)
            maps.append(grad.abs().sum(dim=1).mean(dim=0))  # (H, W)
    return torch.stack(maps)  # (P, H, W)


def effective_area(maps, mass=0.95):
    """How many input pixels hold `mass` of each gradient map's total: [P, H, W] -> [P] ints.

    The square root is the side of a square with the same area, a one-number summary
    of the effective receptive field.

    >>> effective_area(np.array([[[0.0, 1.0], [3.0, 0.0]]]), mass=0.7).tolist()
    [1]
    """
    maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be [P, H, W], got shape {maps.shape}")
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1], got {mass!r}")
    flat = -np.sort(-maps.reshape(len(maps), -1), axis=1)  # largest first
    cumulative = np.cumsum(flat, axis=1)
    totals = cumulative[:, -1:]
    # The first index where the running sum reaches the target mass, counted from 1.
    return (cumulative < mass * totals).sum(axis=1) + 1
