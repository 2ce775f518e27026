"""Which images a training step sees, as a pure function of the step number.

Exact resumption needs the batches after a restart to be the ones the run would
have seen without it, and the 1-process / N-process comparison needs the same
images in a global batch however they are split over processes. Both follow
if (a) the order of samples depends only on (seed, epoch) and (b) each
sample's random augmentation depends only on its place in that order, not on
which process or loader worker draws it.

``StepSampler`` yields, for micro-step k (counted over the whole run), this
process's share of global batch k as (dataset index, augmentation seed) pairs;
``SeededSamples`` applies the dataset's transforms under that seed.
"""
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the sample at ``position`` of ``epoch``'s order.

    Example:
        >>> sample_seed(0, 0, 1) == sample_seed(0, 0, 1) != sample_seed(0, 0, 2)
        True
    """
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


class StepSampler(Sampler):
    """Endless, resumable, distributed sampler over micro-steps.

    Epoch e orders the dataset by a permutation seeded with (seed, e). Global
    micro-batch j of an epoch is positions [j*G, (j+1)*G) of that order, with
    G = batch_per_process * world_size; process r takes positions
    [j*G + r*b, j*G + (r+1)*b). The incomplete tail of an epoch is skipped, as
    with drop_last. Iteration starts at micro-step ``start_step``.

    Yields (index, augmentation seed) pairs, batch_per_process per micro-step;
    use it with DataLoader(batch_size=batch_per_process, sampler=...).

    Example:
        >>> one = StepSampler(10, 4, seed=3)
        >>> two = [StepSampler(10, 2, rank=r, world_size=2, seed=3) for r in (0, 1)]
        >>> import itertools
        >>> whole = list(itertools.islice(iter(one), 4))
        >>> halves = [list(itertools.islice(iter(s), 2)) for s in two]
        >>> whole == halves[0] + halves[1]
        True
    """

    def __init__(self, length: int, batch_per_process: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, start_step: int = 0):
        global_batch = batch_per_process * world_size
        if length < global_batch:
            raise ValueError(
                f"the dataset has {length} images, fewer than one global batch "
                f"({batch_per_process} per process x {world_size} processes = {global_batch})"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in 0..{world_size - 1}, got {rank}")
        self.length, self.batch, self.rank, self.world_size = length, batch_per_process, rank, world_size
        self.seed, self.start_step = seed, start_step
        self.steps_per_epoch = length // global_batch

    def order(self, epoch: int) -> torch.Tensor:
        """The dataset indices in epoch ``epoch``'s order, [length] int64."""
        # position `length` is never a sample's, so the order has a seed of its own
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, self.length))
        return torch.randperm(self.length, generator=generator)

    def __iter__(self):
        step, epoch, order = self.start_step, None, None
        while True:
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                order = self.order(epoch)
            first = (step % self.steps_per_epoch) * self.batch * self.world_size + self.rank * self.batch
            for position in range(first, first + self.batch):
                yield int(order[position]), sample_seed(self.seed, epoch, position)
            step += 1

    def __len__(self):
        raise TypeError("StepSampler is endless; count steps instead")


class SeededSamples(Dataset):
    """Wraps a dataset so that item (index, seed) is dataset[index] drawn with
    torch's generator seeded by ``seed`` (the caller's generator is restored).

    Example:
        >>> from psanet_lite.data.context import ContextDataset
        >>> data = SeededSamples(ContextDataset("train", length=2))
        >>> torch.equal(data[(1, 7)][0], data[(1, 7)][0])
        True
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]
