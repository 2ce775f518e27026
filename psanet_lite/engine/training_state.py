"""Everything a run needs to continue exactly where it stopped.

A training checkpoint is a psanet-lite checkpoint (psanet_lite.checkpoint:
model weights + config, readable with weights_only) with these extra entries:

    iteration   optimizer steps done
    optimizer   SGD state (momentum buffers)
    scheduler   poly schedule state
    scaler      fp16 grad scaler state
    data_step   micro-batches consumed (the sampler restarts there)
    rng         per process: python, numpy, torch (and cuda) generator states
    world_size  processes the run used

Files are written atomically (temporary file, fsync, rename), so a run killed
while saving keeps its previous checkpoint intact; should the newest file be
damaged anyway (a full disk, a copy cut short), resuming falls back to the
newest one that reads and names the one it skipped.
"""
import random
import re
from pathlib import Path

import numpy as np
import torch

from psanet_lite.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "iter_{:07d}.pt"
_CHECKPOINT_PATTERN = re.compile(r"iter_(\d+)\.pt$")


def rng_state() -> dict:
    """This process's generator states, in builtins and tensors only.

    Example:
        >>> state = rng_state(); x = torch.rand(1)
        >>> set_rng_state(state); torch.equal(x, torch.rand(1))
        True
    """
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {**numpy_state, "state": {"key": numpy_state["state"]["key"].tolist(),
                                           "pos": int(numpy_state["state"]["pos"])}},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore generator states saved by ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {"key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                            "pos": numpy_state["state"]["pos"]}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(work_dir, iteration: int) -> Path:
    """work_dir/checkpoints/iter_0000500.pt for iteration 500."""
    return Path(work_dir) / "checkpoints" / CHECKPOINT_NAME.format(iteration)


def checkpoints_newest_first(work_dir) -> list[Path]:
    """The training checkpoints in work_dir/checkpoints, highest iteration first."""
    folder = Path(work_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("iter_*.pt") if (m := _CHECKPOINT_PATTERN.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def latest_checkpoint(work_dir) -> Path | None:
    """The training checkpoint with the highest iteration in work_dir, or None."""
    found = checkpoints_newest_first(work_dir)
    return found[0] if found else None


def load_latest_training_state(work_dir) -> tuple[Path, dict, list[str]]:
    """(path, state, skipped) of the newest training checkpoint in work_dir that reads.

    ``skipped`` says, for each newer file that did not read, which and why.
    Raises FileNotFoundError when there is no checkpoint, ValueError when none reads.

    Example:
        >>> load_latest_training_state("runs/empty")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no training checkpoint in runs/empty/checkpoints to resume from
    """
    skipped = []
    for path in checkpoints_newest_first(work_dir):
        try:
            return path, load_training_state(path), skipped
        except ValueError as error:  # unreadable, foreign or untrusted: try the one before
            skipped.append(f"{path} ({error})")
    if not skipped:
        raise FileNotFoundError(f"no training checkpoint in {Path(work_dir) / 'checkpoints'} to resume from")
    raise ValueError("no training checkpoint reads: " + "; ".join(skipped))


def save_training_state(work_dir, model, config, optimizer, scheduler, scaler, iteration: int,
                        data_step: int, rng_states: list, keep: int = 3) -> Path:
    """Write the checkpoint for ``iteration`` and delete all but the newest ``keep``.

    Args:
        model: the bare model (not the DDP wrapper).
        rng_states: one ``rng_state()`` per process, in rank order.
        keep: training checkpoints to keep (0 keeps all).
    """
    path = checkpoint_path(work_dir, iteration)
    save_checkpoint(
        path, model, config,
        iteration=iteration, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(), data_step=data_step, rng=rng_states, world_size=len(rng_states),
    )
    if keep > 0:
        older = sorted(checkpoint_path(work_dir, 0).parent.glob("iter_*.pt"))[:-keep]
        for stale in older:
            stale.unlink()
    return path


def load_training_state(path) -> dict:
    """Read a training checkpoint; raise ValueError if it lacks the resume entries."""
    checkpoint = load_checkpoint(path)
    missing = [k for k in ("iteration", "optimizer", "scheduler", "scaler", "data_step", "rng")
               if k not in checkpoint]
    if missing:
        raise ValueError(f"{path} is a model checkpoint, not a training checkpoint: it lacks {missing}")
    return checkpoint
