"""Count a model's FLOPs at a given input size in seconds, without doing its arithmetic.

torch.utils.flop_counter.FlopCounterMode counts the FLOPs of the convolutions and matrix
products an input actually goes through (a multiply-add counts 2). Running R101-PSANet
at 512x1024 on a CPU to count them would take a minute; on the meta device PSAMask
cannot build its index map (it depends on values). So the model runs on the CPU while
the arithmetic-heavy operators run on the meta device instead: they return tensors of
the right shape filled with zeros, everything else (PSAMask's index bookkeeping,
normalisation, resizing) runs for real on those. FLOPs depend only on shapes, so the
count is exact.
"""

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

# Operators whose cost is the arithmetic that FlopCounterMode counts.
_HEAVY = {
    aten.conv2d.default,
    aten.convolution.default,
    aten.mm.default,
    aten.bmm.default,
    aten.addmm.default,
    aten.baddbmm.default,
    aten._convolution.default,
}


class _SkipArithmetic(TorchDispatchMode):
    """Dispatch mode running the _HEAVY operators on the meta device (shapes only)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HEAVY:
            device = next(t.device for t in args if isinstance(t, torch.Tensor))
            meta_args, meta_kwargs = tree_map_only(torch.Tensor, lambda t: t.to("meta"), (args, kwargs))
            out = func(*meta_args, **meta_kwargs)
            return tree_map_only(torch.Tensor, lambda t: torch.zeros(t.shape, dtype=t.dtype, device=device), out)
        return func(*args, **kwargs)


def count_flops(model, input_size, batch=1):
    """FLOPs of one inference forward pass of `model` on [batch, C, H, W] images.

    Args:
        model: a PSANet (its in_channels is read from the backbone) on the CPU.
        input_size: (H, W).

    Returns:
        (total FLOPs, {module name: FLOPs} for the top-level modules of the model).

    Example:
        >>> total, parts = count_flops(build_model("psanet_lite_context"), (128, 128))
        >>> sorted(parts)
        ['backbone', 'decode_head']
    """
    was_training = model.training
    model.eval()
    height, width = input_size
    images = torch.zeros(batch, model.backbone.in_channels, height, width)
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter, _SkipArithmetic():
            model(images)
    finally:
        model.train(was_training)
    by_module = counter.get_flop_counts()
    name = type(model).__name__
    parts = {
        key.split(".", 1)[1]: sum(counts.values())
        for key, counts in by_module.items()
        if key.count(".") == 1 and key.startswith(name + ".")
    }
    return counter.get_total_flops(), parts
