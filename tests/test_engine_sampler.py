"""Batches as a function of the step: the same images however the run is split or restarted."""
import itertools

import pytest
import torch

from psanet_lite.engine.sampler import SeededSamples, StepSampler


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_two_processes_split_each_global_batch():
    one = _take(StepSampler(20, 4, seed=1), 4 * 7)  # 7 steps, crossing into epoch 2 (5 steps/epoch)
    halves = [_take(StepSampler(20, 2, rank=r, world_size=2, seed=1), 2 * 7) for r in (0, 1)]
    for step in range(7):
        assert one[4 * step: 4 * step + 4] == halves[0][2 * step: 2 * step + 2] + halves[1][2 * step: 2 * step + 2]


def test_restart_at_a_step_continues_the_sequence():
    whole = _take(StepSampler(10, 3, seed=2), 3 * 8)
    assert _take(StepSampler(10, 3, seed=2, start_step=5), 3 * 3) == whole[15:]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    sampler = StepSampler(12, 4, seed=3)
    items = _take(sampler, 24)
    first, second = [i for i, _ in items[:12]], [i for i, _ in items[12:]]
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != second
    seeds = [s for _, s in items]
    assert len(set(seeds)) == len(seeds)  # every draw gets its own augmentation seed


def test_incomplete_tail_is_skipped():
    sampler = StepSampler(10, 4, seed=0)  # 2 steps per epoch, 2 images never in epoch 0
    epoch0 = {i for i, _ in _take(sampler, 8)}
    assert len(epoch0) == 8


def test_dataset_smaller_than_a_global_batch():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StepSampler(3, 2, world_size=2)


class NoisyItems(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return index + torch.rand(())


def test_seeded_samples_fix_the_augmentation_and_spare_the_caller():
    data = SeededSamples(NoisyItems())
    torch.manual_seed(0)
    expected_next = torch.rand(())
    torch.manual_seed(0)
    a, b, c = data[(1, 10)], data[(1, 10)], data[(1, 11)]
    assert a == b != c
    assert torch.rand(()) == expected_next  # the caller's generator was not advanced
