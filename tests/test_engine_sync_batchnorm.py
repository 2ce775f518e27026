"""SyncBatchNorm2d over 2 gloo processes equals BatchNorm2d over the joined batch."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from psanet_lite.engine.sync_batchnorm import SyncBatchNorm2d, convert_sync_batchnorm


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, x, grad_out, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    bn = SyncBatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    part = x[2 * rank: 2 * rank + 2].clone().requires_grad_(True)
    out = bn(part)
    out.backward(grad_out[2 * rank: 2 * rank + 2])
    grads = torch.stack([bn.weight.grad, bn.bias.grad])
    dist.all_reduce(grads)  # what DDP would sum (before its division by the world size)
    results[rank] = (out.detach(), part.grad, grads, bn.running_mean.clone(), bn.running_var.clone())
    dist.destroy_process_group()


def test_two_processes_match_one_batch():
    torch.manual_seed(1)
    x = torch.randn(4, 3, 5, 6) * 3 + 1
    grad_out = torch.randn(4, 3, 5, 6)
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), x, grad_out, results), nprocs=2)

    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    joined = x.clone().requires_grad_(True)
    out = bn(joined)
    out.backward(grad_out)
    for rank in (0, 1):
        r_out, r_grad, r_params, r_mean, r_var = results[rank]
        assert torch.allclose(r_out, out[2 * rank: 2 * rank + 2].detach(), atol=1e-5)
        assert torch.allclose(r_grad, joined.grad[2 * rank: 2 * rank + 2], atol=1e-5)
        assert torch.allclose(r_params, torch.stack([bn.weight.grad, bn.bias.grad]), atol=1e-4)
        assert torch.allclose(r_mean, bn.running_mean, atol=1e-6)
        assert torch.allclose(r_var, bn.running_var, atol=1e-5)


def test_conversion_keeps_state_and_names():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    net[1].running_mean.fill_(0.5)
    keys = list(net.state_dict())
    converted = convert_sync_batchnorm(net)
    assert isinstance(converted[1], SyncBatchNorm2d)
    assert list(converted.state_dict()) == keys
    assert (converted[1].running_mean == 0.5).all()
