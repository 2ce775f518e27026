"""The training loop: iteration-based SGD with the poly schedule, as the
configs describe it, on one CPU, one GPU, or many processes under torchrun.

One optimizer step ("iteration") consumes config.train.batch_size images in
total: each of the world_size processes takes batch_per_gpu images per
micro-step, and gradients are accumulated over
    accumulation = batch_size / (batch_per_gpu * world_size)
micro-steps, so the published 4 GPUs x 2 images run as 1 GPU x 2 images x 4
accumulated steps with the same global batch (BatchNorm then sees 2 images).

    train(get_config("psanet_lite_context"), "runs/context")
"""
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from psanet_lite.build import build_model
from psanet_lite.checkpoint import remove_temporaries, save_checkpoint
from psanet_lite.data import build_dataset, build_train_transforms
from psanet_lite.engine.distributed import (
    init_distributed,
    mean_over_processes,
    shutdown_distributed,
    synchronise_batchnorm,
)
from psanet_lite.engine.evaluator import evaluate
from psanet_lite.engine.loss import segmentation_loss
from psanet_lite.engine.optim import build_optimizer
from psanet_lite.engine.options import AMP_CHOICES, TrainOptions
from psanet_lite.engine.run_log import RunLog
from psanet_lite.engine.sampler import SeededSamples, StepSampler
from psanet_lite.engine.training_state import (
    latest_checkpoint,
    load_latest_training_state,
    load_training_state,
    rng_state,
    save_training_state,
    set_rng_state,
)

AMP_DTYPES = dict(zip(AMP_CHOICES, (None, torch.bfloat16, torch.float16)))


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the message says where the last checkpoint is.

    Attributes iteration (steps done) and checkpoint (the newest on disk, or None).
    """

    def __init__(self, message, iteration, checkpoint):
        super().__init__(message)
        self.iteration, self.checkpoint = iteration, checkpoint


class NonFiniteLoss(ValueError):
    """The loss (or the weights) became NaN or infinite; training stopped there."""


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def accumulation_steps(train, world_size: int) -> int:
    """Micro-steps per optimizer step so that the global batch is train.batch_size.

    Example:
        >>> from psanet_lite.configs import get_config
        >>> accumulation_steps(get_config("psanet_r50-d8_512x1024_40k_cityscapes").train, 1)
        4
    """
    per_step = train.batch_per_gpu * world_size
    if train.batch_size % per_step:
        raise ValueError(
            f"train.batch_size {train.batch_size} is not a multiple of batch_per_gpu "
            f"{train.batch_per_gpu} x {world_size} processes"
        )
    return train.batch_size // per_step


def _gather_rng_states(world_size: int) -> list:
    state = rng_state()
    if world_size == 1:
        return [state]
    states = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def train(config, work_dir, options: TrainOptions | None = None) -> dict:
    """Train ``config`` (a Config) into ``work_dir``; returns a summary dict.

    Writes work_dir/checkpoints/iter_*.pt every config.train.checkpoint_interval
    iterations and at the end, work_dir/final.pt (weights + config, for
    ``psanet-lite eval``), work_dir/log.jsonl and work_dir/tensorboard/.
    Resuming with a larger config.train.iterations than the checkpoint's
    extends the run (the poly schedule is stretched to the new length).
    Raises TrainingInterrupted on Ctrl-C, naming the last checkpoint, and
    NonFiniteLoss at the first NaN or infinite loss (final.pt is not written;
    the checkpoints before it are kept).

    Example:
        >>> summary = train(get_config("psanet_lite_context", iterations=20), "runs/tiny")  # doctest: +SKIP
    """
    options = options or TrainOptions()
    work_dir = Path(work_dir)
    if work_dir.exists() and not work_dir.is_dir():
        raise NotADirectoryError(f"work dir {work_dir} is a file, not a folder")
    if options.resume is None and latest_checkpoint(work_dir) is not None:
        raise FileExistsError(
            f"{work_dir} already holds checkpoints (latest {latest_checkpoint(work_dir)}); "
            "pass --resume to continue that run, or choose another --work-dir"
        )
    if options.resume not in (None, "auto") and not Path(options.resume).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint file at {options.resume}")
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    place = init_distributed(options.device)
    try:
        return _Run(config, work_dir, options, place).run()
    finally:
        shutdown_distributed()


def _read_resume_state(work_dir, resume, is_main):
    """(path, state) of the checkpoint to resume from (None, None for a fresh run)."""
    if resume is None:
        return None, None
    if resume != "auto":
        return Path(resume), load_training_state(resume)
    path, state, skipped = load_latest_training_state(work_dir)
    if is_main:
        for note in skipped:
            print(f"note: skipping unreadable checkpoint {note}")
    return path, state


class _Run:
    """One training run, step by step: setup (here), iterations, logging,
    checkpoints, validation, the end."""

    def __init__(self, config, work_dir, options, place):
        self.config, self.cfg, self.work_dir, self.options, self.place = config, config.train, work_dir, options, place
        self.accumulation = accumulation_steps(self.cfg, place.world_size)
        seed_everything(options.seed + place.rank)
        model = build_model(config).to(place.device)
        if self.cfg.sync_bn and place.world_size > 1:
            model = synchronise_batchnorm(model, place.device)
        self.model = model
        self.optimizer, self.scheduler = build_optimizer(model, self.cfg)
        self.amp_dtype = AMP_DTYPES[options.amp]
        self.scaler = torch.amp.GradScaler(place.device.type, enabled=options.amp == "fp16")
        self.iteration, self.data_step = 0, 0
        self.last_checkpoint, state = _read_resume_state(work_dir, options.resume, place.is_main)
        if state is not None:
            self._restore(state)
        self.net = model
        if place.world_size > 1:
            ids = [place.device.index] if place.device.type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        self.batches = iter(self._loader())
        self.val = None
        if options.evaluate and self.cfg.eval_interval > 0:
            self.val = build_dataset(config.data, "val", options.data_root)
        self.summary = {}

    def _restore(self, state):
        """Continue from a training checkpoint (same config; iterations may grow)."""
        path, place = self.last_checkpoint, self.place
        _check_same_config(state["config"], self.config.to_dict(), path, state["iteration"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.data_step = state["iteration"], state["data_step"]
        if place.is_main and state["config"]["train"]["iterations"] != self.cfg.iterations:
            print(f"extending the run from {state['config']['train']['iterations']} to {self.cfg.iterations} "
                  "iterations: the poly learning-rate schedule is stretched to the new length")
        if state["world_size"] != place.world_size and place.is_main:
            print(f"note: {path} was written by {state['world_size']} processes, this run has "
                  f"{place.world_size}; batches stay the same, random streams per process do not")
        _stretch_schedule(self.optimizer, self.scheduler, self.cfg.iterations)
        set_rng_state(state["rng"][place.rank % len(state["rng"])])
        if place.is_main:
            print(f"resuming from {path} at iteration {self.iteration}")

    def _loader(self):
        config, options, place = self.config, self.options, self.place
        dataset = build_dataset(config.data, "train", options.data_root, build_train_transforms(config.data))
        sampler = StepSampler(len(dataset), self.cfg.batch_per_gpu, place.rank, place.world_size,
                              seed=options.seed, start_step=self.data_step)
        return DataLoader(SeededSamples(dataset), batch_size=self.cfg.batch_per_gpu, sampler=sampler,
                          num_workers=options.workers, pin_memory=place.device.type == "cuda",
                          generator=torch.Generator().manual_seed(options.seed),
                          persistent_workers=options.workers > 0)

    def run(self) -> dict:
        """Iterate to config.train.iterations; write final.pt; return the summary."""
        place, options = self.place, self.options
        if place.is_main:
            remove_temporaries(self.work_dir / "checkpoints")
            remove_temporaries(self.work_dir)
        self.log = RunLog(self.work_dir, start=self.iteration) if place.is_main else None
        self.bar = tqdm(total=self.cfg.iterations, initial=self.iteration, desc=self.config.name,
                        dynamic_ncols=True, disable=not (options.progress and place.is_main))
        self._reset_window()
        try:
            self.net.train()
            while self.iteration < self.cfg.iterations:
                self._iterate()
        except KeyboardInterrupt:
            # Ask the disk, not last_checkpoint: Ctrl-C can land after a checkpoint's rename
            # and before save_training_state returns. A file there is complete (written
            # atomically), and it is the one --resume will pick up.
            on_disk = latest_checkpoint(self.work_dir) or self.last_checkpoint
            where = (f"the last checkpoint is {on_disk}" if on_disk is not None
                     else "no checkpoint was written yet")
            raise TrainingInterrupted(f"interrupted at iteration {self.iteration}; {where}",
                                      self.iteration, on_disk) from None
        finally:
            self.bar.close()
            if self.log is not None:
                self.log.close()
        if place.is_main:
            miou = 100 * self.summary["mIoU"] if "mIoU" in self.summary else None
            save_checkpoint(self.work_dir / "final.pt", self.model, self.config, miou=miou,
                            metadata={"iterations": self.iteration, "seed": options.seed})
        return {"iterations": self.iteration, "work_dir": str(self.work_dir),
                "checkpoint": str(self.last_checkpoint), **self.summary}

    def _iterate(self):
        """One optimizer step, then whatever falls due at its iteration."""
        lr = self.optimizer.param_groups[0]["lr"]
        loss = self._step()
        self.iteration += 1
        self.window_images += self.cfg.batch_size
        self.bar.update(1)
        if not torch.isfinite(loss):
            self._stop_non_finite(f"the loss is {loss.item()} at iteration {self.iteration} (lr {lr:.3g})")
        self.window_loss += loss
        at_end = self.iteration == self.cfg.iterations
        if self.iteration % self.options.log_interval == 0 or at_end:
            self._log(lr)
        if self.iteration % self.cfg.checkpoint_interval == 0 or at_end:
            self._checkpoint()
        if self.val is not None and (self.iteration % self.cfg.eval_interval == 0 or at_end):
            self._validate()

    def _step(self) -> torch.Tensor:
        """Forward and backward over the accumulated micro-batches and one optimizer
        step; returns the step's loss, averaged over processes (a 0-dim tensor)."""
        place, net, accumulation = self.place, self.net, self.accumulation
        step_loss = torch.zeros((), device=place.device)
        for micro in range(accumulation):
            images, masks = next(self.batches)
            images = images.to(place.device, non_blocking=True)
            masks = masks.to(place.device, non_blocking=True)
            accumulate_only = place.world_size > 1 and micro < accumulation - 1
            with net.no_sync() if accumulate_only else nullcontext():
                with torch.autocast(place.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    output = net(images)
                loss = segmentation_loss(output, masks, self.cfg.aux_weight, self.config.data.ignore_index)["loss"]
                self.scaler.scale(loss / accumulation).backward()
            step_loss += loss.detach() / accumulation
            self.data_step += 1
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return mean_over_processes(step_loss)

    def _reset_window(self):
        self.window_start, self.window_images = time.perf_counter(), 0
        self.window_loss = torch.zeros((), device=self.place.device)

    def _log(self, lr):
        interval = self.options.log_interval
        steps = interval if self.iteration % interval == 0 else self.iteration % interval
        mean_loss = (self.window_loss / steps).item()
        speed = self.window_images / (time.perf_counter() - self.window_start)
        if self.place.is_main:
            self.log.write(self.iteration, {"loss": mean_loss, "lr": lr, "images_per_s": speed})
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
        self._reset_window()

    def _checkpoint(self):
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._stop_non_finite(f"the weights hold NaN or infinite values at iteration {self.iteration}")
        states = _gather_rng_states(self.place.world_size)
        if self.place.is_main:
            self.last_checkpoint = save_training_state(
                self.work_dir, self.model, self.config, self.optimizer, self.scheduler, self.scaler,
                self.iteration, self.data_step, states, keep=self.options.keep_checkpoints)
        self.window_start = time.perf_counter()  # the images/s figure counts training only

    def _validate(self):
        place = self.place
        metrics = evaluate(self.model, self.val, self.config, place.device, rank=place.rank,
                           world_size=place.world_size, progress=self.options.progress and place.is_main)
        self.net.train()
        self.summary = {k: metrics[k] for k in ("aAcc", "mIoU", "mAcc", "IoU", "Acc")}
        if place.is_main:
            self.log.write(self.iteration, self.summary, group="val")
            self.bar.write(f"iteration {self.iteration}: val mIoU {100 * metrics['mIoU']:.2f}  "
                           f"aAcc {100 * metrics['aAcc']:.2f}")
        self.window_start = time.perf_counter()

    def _stop_non_finite(self, what):
        kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                else "no checkpoint was written")
        raise NonFiniteLoss(f"training diverged: {what}; stopped without writing final.pt ({kept}). "
                            "A smaller train.lr usually helps.")


def _stretch_schedule(optimizer, scheduler, iterations: int) -> None:
    """Make a resumed poly schedule run to ``iterations`` (a no-op when it already does)."""
    decay = scheduler.lr_lambdas[0]
    if decay.iterations == iterations:
        return
    decay.iterations = iterations
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * decay(scheduler.last_epoch)


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _check_same_config(saved: dict, current: dict, path, iteration: int) -> None:
    """Resuming continues the same experiment: refuse a changed config, except a
    train.iterations beyond the checkpoint's iteration (that extends the run)."""
    saved, current = _flatten(saved), _flatten(current)
    if current.get("train.iterations", 0) < iteration:
        raise ValueError(f"{path} is at iteration {iteration}: train.iterations must be at least that to "
                         f"resume, got {current.get('train.iterations')}")
    changed = [f"{k}: {saved.get(k)!r} in the checkpoint, {current.get(k)!r} now"
               for k in sorted(set(saved) | set(current))
               if k != "train.iterations" and _as_lists(saved.get(k)) != _as_lists(current.get(k))]
    if changed:
        raise ValueError(f"{path} was trained with a different config; resume with the same "
                         "preset and --set options. Differences: " + "; ".join(changed))


def _as_lists(value):
    return list(value) if isinstance(value, tuple) else value
