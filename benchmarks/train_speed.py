"""Training throughput (images/s) and peak memory of one training step.

Each measurement runs in a fresh subprocess (so peak memory is its own): the
preset's model in train mode, a batch of random images and labels at the
preset's crop size, forward + loss (main + 0.4 aux) + backward + SGD step,
timed over --iterations steps after --warmup steps. Data loading is not
included: this is the model's training speed.

    python benchmarks/train_speed.py                 # CPU: the small context model, fp32
    python benchmarks/train_speed.py --device cuda   # GPU: R50-D8 at 512x1024, fp32 and bf16
    python benchmarks/train_speed.py --device cuda --batch 2 --amp none --amp bf16 --tag fullres \
        --set 'data.crop_size=(1024,2048)' --set shrink_factor=1 --set fused=True

--set KEY=VALUE changes a config field as `psanet-lite train --set` does (the second
command above trains the PSA head on the unshrunk 128x256 map of a whole Cityscapes
image with the fused aggregation); --tag names the result files. A case that fails
(out of memory, say) is recorded with its error and the run goes on.

Peak memory: torch.cuda.max_memory_allocated on CUDA; the process's peak
resident set size (ru_maxrss, including the Python interpreter and torch
itself) on CPU. Results go to benchmarks/results/train_speed_{cpu,cuda}.json and .md.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from psanet_lite.configs import parse_overrides
from psanet_lite.engine.options import AMP_CHOICES, DEVICES

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {
    "cpu": [("psanet_lite_context", "none")],
    "cuda": [("psanet_r50-d8_512x1024_40k_cityscapes", "none"), ("psanet_r50-d8_512x1024_40k_cityscapes", "bf16")],
}


def measure(preset: str, amp: str, device: str, batch: int | None, iterations: int, warmup: int, threads: int,
            overrides: dict) -> dict:
    """One configuration, in this process."""
    from psanet_lite.build import build_model
    from psanet_lite.configs import get_config
    from psanet_lite.engine.loss import segmentation_loss
    from psanet_lite.engine.optim import build_optimizer

    torch.set_num_threads(threads)
    config = get_config(preset, **overrides)
    batch = batch or config.train.batch_per_gpu
    height, width = config.data.crop_size
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer, _ = build_optimizer(model, config.train)
    images = torch.randn(batch, 3, height, width, device=device)
    labels = torch.randint(0, config.data.num_classes, (batch, height, width), device=device)
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    scaler = torch.amp.GradScaler(device, enabled=amp == "fp16")

    def step():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            output = model(images)
        loss = segmentation_loss(output, labels, config.train.aux_weight)["loss"]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        hardware = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        hardware = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), {threads} threads"
    return {
        "preset": preset, "overrides": overrides, "device": device, "hardware": hardware, "amp": amp, "batch": batch,
        "crop": [height, width], "iterations": iterations,
        "images_per_s": round(batch * iterations / seconds, 2),
        "seconds_per_iteration": round(seconds / iterations, 4),
        "peak_memory_gib": round(peak, 3),
        "torch": torch.__version__,
    }


def markdown(rows) -> str:
    lines = ["| preset | overrides | device | precision | batch | crop | images/s | s/iteration | peak memory (GiB) |",
             "|---|---|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        changed = ", ".join(f"{k}={v}" for k, v in r.get("overrides", {}).items()) or "none"
        head = f"| {r['preset']} | {changed} | {r['hardware']} | {'fp32' if r['amp'] == 'none' else r['amp']} | {r['batch']} "
        if "error" in r:
            lines.append(head + f"| | failed: {r['error']} | | |")
            continue
        lines.append(head + f"| {r['crop'][0]}x{r['crop'][1]} | {r['images_per_s']} "
                     f"| {r['seconds_per_iteration']} | {r['peak_memory_gib']} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--preset", action="append", help="preset to measure (repeatable; default per device)")
    parser.add_argument("--amp", action="append", choices=AMP_CHOICES,
                        help="precisions to measure (repeatable; default per device)")
    parser.add_argument("--batch", type=int, help="images per step (default: the preset's batch_per_gpu)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="torch threads on CPU, comma-separated (default 1,2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config field of every measured preset (repeatable)")
    parser.add_argument("--tag", help="results go to train_speed_<device>-<tag>.json/.md (default: no tag)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--single", help=argparse.SUPPRESS)  # 'preset,amp': measure in this process
    args = parser.parse_args()
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as error:
        parser.error(str(error))

    if args.single:
        preset, amp = args.single.split(",")
        print(json.dumps(measure(preset, amp, args.device, args.batch, args.iterations, args.warmup,
                                 int(args.threads), overrides)))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    cases = DEFAULTS[args.device]
    if args.preset or args.amp:
        cases = [(p, a) for p in (args.preset or [cases[0][0]]) for a in (args.amp or ["none"])]
    thread_counts = [int(t) for t in args.threads.split(",")] if args.device == "cpu" else [1]
    rows = []
    for (preset, amp), threads in [(case, t) for case in cases for t in thread_counts]:
        command = [sys.executable, __file__, "--single", f"{preset},{amp}", "--device", args.device,
                   "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--threads", str(threads)]
        if args.batch:
            command += ["--batch", str(args.batch)]
        command += [f"--set={pair}" for pair in args.overrides]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            row = json.loads(result.stdout.strip().splitlines()[-1])
        else:  # keep going: an out-of-memory case is a result too
            last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            row = {"preset": preset, "overrides": overrides, "device": args.device, "amp": amp,
                   "hardware": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                   "batch": args.batch or "preset", "error": last[:300]}
        rows.append({**row, "date": datetime.date.today().isoformat()})
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"train_speed_{args.device}" + (f"-{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    (out / f"{stem}.md").write_text(
        f"# Training speed ({args.device}, {datetime.date.today().isoformat()})\n\nCommand: `python {shlex.join(['benchmarks/train_speed.py', *sys.argv[1:]])}`"
        f" ({args.iterations} timed iterations after {args.warmup} warm-up; load average "
        f"{os.getloadavg()[0]:.1f} at the end).\n\n" + markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
