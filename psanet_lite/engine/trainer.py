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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from psanet_lite.build import build_model
from psanet_lite.checkpoint import save_checkpoint
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
from psanet_lite.engine.run_log import RunLog
from psanet_lite.engine.sampler import SeededSamples, StepSampler
from psanet_lite.engine.training_state import (
    latest_checkpoint,
    load_training_state,
    rng_state,
    save_training_state,
    set_rng_state,
)

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainOptions:
    """How to run (not what to learn: that is the Config).

    Attributes:
        data_root: folder of a real dataset (None for 'context').
        resume: None, 'auto' (latest checkpoint in work_dir) or a checkpoint path.
        device: 'cpu', 'cuda' or None (CUDA when available).
        amp: 'none', 'bf16' or 'fp16' (fp16 with a gradient scaler).
        seed: seeds model init, augmentation and data order.
        workers: data-loading processes per training process.
        deterministic: torch.use_deterministic_algorithms(True) (needed for
            bitwise-equal reruns on GPU; CPU runs are repeatable without it).
        log_interval: iterations between log records and progress-bar updates.
        keep_checkpoints: training checkpoints kept in work_dir/checkpoints (0: all).
        evaluate: evaluate on the val split every config.train.eval_interval iterations.
        progress: show the tqdm progress bar.
    """

    data_root: str | None = None
    resume: str | None = None
    device: str | None = None
    amp: str = "none"
    seed: int = 0
    workers: int = 2
    deterministic: bool = False
    log_interval: int = 10
    keep_checkpoints: int = 3
    evaluate: bool = True
    progress: bool = True


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the message says where the last checkpoint is."""


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
    Raises TrainingInterrupted on Ctrl-C, naming the last checkpoint.

    Example:
        >>> summary = train(get_config("psanet_lite_context", iterations=20), "runs/tiny")  # doctest: +SKIP
    """
    options = options or TrainOptions()
    if options.amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {tuple(AMP_DTYPES)}, got {options.amp!r}")
    work_dir = Path(work_dir)
    resume_path = None
    if options.resume == "auto":
        resume_path = latest_checkpoint(work_dir)
        if resume_path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {work_dir / 'checkpoints'}")
    elif options.resume is not None:
        resume_path = Path(options.resume)
    elif latest_checkpoint(work_dir) is not None:
        raise FileExistsError(
            f"{work_dir} already holds checkpoints (latest {latest_checkpoint(work_dir)}); "
            "pass --resume to continue that run, or choose another --work-dir"
        )
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    place = init_distributed(options.device)
    try:
        return _train(config, work_dir, options, place, resume_path)
    finally:
        shutdown_distributed()


def _train(config, work_dir, options, place, resume_path):
    cfg = config.train
    accumulation = accumulation_steps(cfg, place.world_size)
    seed_everything(options.seed + place.rank)
    model = build_model(config).to(place.device)
    if cfg.sync_bn and place.world_size > 1:
        model = synchronise_batchnorm(model, place.device)
    optimizer, scheduler = build_optimizer(model, cfg)
    amp_dtype = AMP_DTYPES[options.amp]
    scaler = torch.amp.GradScaler(place.device.type, enabled=options.amp == "fp16")

    start, data_step = 0, 0
    if resume_path is not None:
        state = load_training_state(resume_path)
        _check_same_config(state["config"], config.to_dict(), resume_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, data_step = state["iteration"], state["data_step"]
        if state["world_size"] != place.world_size and place.is_main:
            print(f"note: {resume_path} was written by {state['world_size']} processes, this run has "
                  f"{place.world_size}; batches stay the same, random streams per process do not")
        set_rng_state(state["rng"][place.rank % len(state["rng"])])

    net = model
    if place.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[place.device.index] if place.device.type == "cuda" else None)

    dataset = build_dataset(config.data, "train", options.data_root, build_train_transforms(config.data))
    sampler = StepSampler(len(dataset), cfg.batch_per_gpu, place.rank, place.world_size,
                          seed=options.seed, start_step=data_step)
    loader = DataLoader(SeededSamples(dataset), batch_size=cfg.batch_per_gpu, sampler=sampler,
                        num_workers=options.workers, pin_memory=place.device.type == "cuda",
                        generator=torch.Generator().manual_seed(options.seed),
                        persistent_workers=options.workers > 0)
    val = None
    if options.evaluate and cfg.eval_interval > 0:
        val = build_dataset(config.data, "val", options.data_root)

    log = RunLog(work_dir, start=start) if place.is_main else None
    bar = tqdm(total=cfg.iterations, initial=start, desc=config.name, dynamic_ncols=True,
               disable=not (options.progress and place.is_main))
    last_checkpoint = resume_path
    batches = iter(loader)
    iteration = start
    window_start, window_images, window_loss = time.perf_counter(), 0, torch.zeros((), device=place.device)
    summary = {}
    try:
        net.train()
        while iteration < cfg.iterations:
            lr = optimizer.param_groups[0]["lr"]
            for micro in range(accumulation):
                images, masks = next(batches)
                images = images.to(place.device, non_blocking=True)
                masks = masks.to(place.device, non_blocking=True)
                accumulate_only = place.world_size > 1 and micro < accumulation - 1
                with net.no_sync() if accumulate_only else nullcontext():
                    with torch.autocast(place.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        output = net(images)
                    loss = segmentation_loss(output, masks, cfg.aux_weight, config.data.ignore_index)["loss"]
                    scaler.scale(loss / accumulation).backward()
                window_loss += loss.detach() / accumulation
                data_step += 1
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            iteration += 1
            window_images += cfg.batch_size
            bar.update(1)

            if iteration % options.log_interval == 0 or iteration == cfg.iterations:
                steps = options.log_interval if iteration % options.log_interval == 0 else iteration % options.log_interval
                mean_loss = mean_over_processes(window_loss / steps).item()
                speed = window_images / (time.perf_counter() - window_start)
                if place.is_main:
                    log.write(iteration, {"loss": mean_loss, "lr": lr, "images_per_s": speed})
                    bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
                window_start, window_images = time.perf_counter(), 0
                window_loss.zero_()

            if iteration % cfg.checkpoint_interval == 0 or iteration == cfg.iterations:
                states = _gather_rng_states(place.world_size)
                if place.is_main:
                    last_checkpoint = save_training_state(
                        work_dir, model, config, optimizer, scheduler, scaler, iteration, data_step,
                        states, keep=options.keep_checkpoints)
                window_start = time.perf_counter()  # the images/s figure counts training only

            if val is not None and (iteration % cfg.eval_interval == 0 or iteration == cfg.iterations):
                metrics = evaluate(model, val, config, place.device, rank=place.rank,
                                   world_size=place.world_size)
                net.train()
                summary = {k: metrics[k] for k in ("aAcc", "mIoU", "mAcc", "IoU", "Acc")}
                if place.is_main:
                    log.write(iteration, summary, group="val")
                    bar.write(f"iteration {iteration}: val mIoU {100 * metrics['mIoU']:.2f}  "
                              f"aAcc {100 * metrics['aAcc']:.2f}")
                window_start = time.perf_counter()
    except KeyboardInterrupt:
        # Ask the disk, not last_checkpoint: Ctrl-C can land after a checkpoint's rename
        # and before save_training_state returns. A file there is complete (written
        # atomically), and it is the one --resume will pick up.
        on_disk = latest_checkpoint(work_dir) or last_checkpoint  # (a --resume PATH from elsewhere)
        where = (f"the last checkpoint is {on_disk}" if on_disk is not None
                 else "no checkpoint was written yet")
        raise TrainingInterrupted(
            f"interrupted at iteration {iteration}; {where}. "
            f"Continue with: psanet-lite train {config.name} --work-dir {work_dir} --resume"
        ) from None
    finally:
        bar.close()
        if log is not None:
            log.close()

    if place.is_main:
        miou = 100 * summary["mIoU"] if "mIoU" in summary else None
        save_checkpoint(work_dir / "final.pt", model, config, miou=miou,
                        metadata={"iterations": iteration, "seed": options.seed})
    return {"iterations": iteration, "work_dir": str(work_dir), "checkpoint": str(last_checkpoint), **summary}


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _check_same_config(saved: dict, current: dict, path) -> None:
    """Resuming continues the same experiment: refuse a changed config."""
    saved, current = _flatten(saved), _flatten(current)
    changed = [f"{k}: {saved.get(k)!r} in the checkpoint, {current.get(k)!r} now"
               for k in sorted(set(saved) | set(current))
               if _as_lists(saved.get(k)) != _as_lists(current.get(k))]
    if changed:
        raise ValueError(f"{path} was trained with a different config; resume with the same "
                         "preset and --set options. Differences: " + "; ".join(changed))


def _as_lists(value):
    return list(value) if isinstance(value, tuple) else value
