"""SGD with mmsegmentation's poly learning-rate schedule, by iteration."""
import torch
from torch.optim.lr_scheduler import LambdaLR


class PolyDecay:
    """The factor LambdaLR multiplies the base lr by at iteration i, so that

        lr(i) = (lr - min_lr) * (1 - i / iterations) ** power + min_lr

    (mmsegmentation's PolyLR with eta_min). An object rather than a lambda so
    that the scheduler's state_dict keeps its numbers.

    Example:
        >>> decay = PolyDecay(lr=0.01, min_lr=1e-4, iterations=100, power=0.9)
        >>> decay(0), round(0.01 * decay(100), 6)
        (1.0, 0.0001)
    """

    def __init__(self, lr: float, min_lr: float, iterations: int, power: float):
        self.lr, self.min_lr, self.iterations, self.power = lr, min_lr, iterations, power

    def __call__(self, iteration: int) -> float:
        progress = min(iteration, self.iterations) / self.iterations
        return ((self.lr - self.min_lr) * (1 - progress) ** self.power + self.min_lr) / self.lr


def build_optimizer(model: torch.nn.Module, train) -> tuple[torch.optim.SGD, LambdaLR]:
    """SGD (momentum, weight decay on every parameter, as the configs have it)
    and its poly schedule, from a TrainConfig (``config.train``).

    Call ``scheduler.step()`` once per optimizer step.

    Example:
        >>> from psanet_lite.configs import get_config
        >>> optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), get_config("psanet_lite_context").train)
        >>> optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]
        (0.05, 0.9)
    """
    if train.optimizer != "sgd":
        raise ValueError(f"train.optimizer must be 'sgd' (the configs' optimizer), got {train.optimizer!r}")
    if train.iterations < 1:
        raise ValueError(f"train.iterations must be at least 1, got {train.iterations}")
    optimizer = torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum,
                                weight_decay=train.weight_decay)
    scheduler = LambdaLR(optimizer, PolyDecay(train.lr, train.min_lr, train.iterations, train.lr_power))
    return optimizer, scheduler
