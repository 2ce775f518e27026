"""Batch normalisation over the whole global batch, for every device.

mmsegmentation trains PSANet with SyncBN: the batch statistics are taken over
all processes' images, so 4 GPUs x 2 images normalise like one batch of 8.
torch.nn.SyncBatchNorm does this on CUDA only; ``SyncBatchNorm2d`` below does
it with two differentiable all-reduces (sum, then centred sum of squares) and
so also runs on CPU processes joined by gloo. Its state dict is BatchNorm2d's.
"""
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover all processes of the group.

    Outside training, or without an initialised process group of more than one
    process, it is exactly BatchNorm2d.

    Example:
        >>> bn = SyncBatchNorm2d(4)
        >>> bn(torch.randn(2, 4, 3, 3)).shape  # single process: plain BatchNorm2d
        torch.Size([2, 4, 3, 3])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        local_count = x.new_full((1,), x.numel() // channels)
        totals = dist_fn.all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), local_count]))  # [C + 1]
        count = totals[-1]
        mean = totals[:-1] / count  # [C]
        centred = x - mean[None, :, None, None]  # [N, C, H, W]
        var = dist_fn.all_reduce(centred.square().sum(dim=(0, 2, 3))) / count  # [C], biased
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count.item())
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean, var, count):
        self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
        unbiased = var * count / max(count - 1, 1)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of ``model`` by SyncBatchNorm2d, in place,
    keeping parameters and running statistics. Returns the model.

    Example:
        >>> net = convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
        >>> type(net[1]).__name__
        'SyncBatchNorm2d'
    """
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats, device=child.weight.device if child.affine else None)
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child)
    return model
