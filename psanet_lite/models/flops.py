"""Count a model's FLOPs at a given input size in seconds, without doing its arithmetic.

torch.utils.flop_counter.FlopCounterMode counts the FLOPs of the convolutions and matrix
products an input actually goes through (a multiply-add counts 2). Running R101-PSANet
at 512x1024 on a CPU to count them would take a minute. Instead the model runs on the
meta device: torch.func.functional_call swaps its parameters and buffers for meta
copies (the model itself is left as it is, on whatever device), and every operator then
computes only the shape of its output. PSAMask builds its index map on the CPU and moves
it, so it runs there too. FLOPs depend only on shapes, so the count is exact.
"""

import itertools

import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model, input_size, batch=1):
    """FLOPs of one inference forward pass of `model` on [batch, C, H, W] images.

    Args:
        model: a PSANet (its in_channels is read from the backbone), on any device.
        input_size: (H, W).
        batch: images in the batch.

    Returns:
        (total FLOPs, {module name: FLOPs} for the top-level modules of the model).

    Example:
        >>> from psanet_lite import build_model
        >>> total, parts = count_flops(build_model("psanet_lite_context"), (128, 128))
        >>> sorted(parts)
        ['backbone', 'decode_head']
    """
    was_training = model.training
    model.eval()
    height, width = input_size
    meta = torch.device("meta")
    images = torch.zeros(batch, model.backbone.in_channels, height, width, device=meta)  # [N, C, H, W]
    state = {name: tensor.to(meta)
             for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers())}
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            functional_call(model, state, (images,))
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
