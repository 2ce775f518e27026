"""Ablation on the context dataset: does point-wise spatial attention read long-range context?

Trains the book's small PSANet ('psanet_lite_context') once per head of
psanet_lite.book.VARIANTS with the same budget (iterations, batch, seed) and evaluates
each on the validation split: an FCN head (no context), global pooling (ParseNet),
pyramid pooling (PSPNet), non-local self-attention, PSA collect, distribute and
bi-direction (the paper's PSANet), each sized to about the PSA head's parameter count.

In the context dataset the class of every object is given only by a coloured cue
band more than 76 px away (data/README.md), beyond the 74 px reach of the FCN
network's receptive field. The paper's ablation compares the same heads (PSA
collect, distribute, bi-direction against the network without PSA) on ADE20K.

With --task markers each head is trained on the context dataset first and then, from
those weights, on the marker dataset (data/README.md), where an object's shape selects
the offset of the marker that decides its class.

    python benchmarks/ablation_context.py                     # preset budget, all variants
    python benchmarks/ablation_context.py --iterations 600    # a smaller budget
    python benchmarks/ablation_context.py --task markers --seed 1

Writes benchmarks/results/ablation_context.json and .md (ablation_markers.* for
--task markers); training runs go to
--work-dir (default runs/ablation_context, ignored by git).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from psanet_lite.book import TASKS, VARIANTS  # the heads of the ablation, defined once for the book and here
from psanet_lite.build import build_model
from psanet_lite.configs import get_config
from psanet_lite.data import build_dataset
from psanet_lite.engine import TrainOptions, evaluate, train
from psanet_lite.engine.run_log import json_safe

RESULTS = Path(__file__).resolve().parent / "results"


def _train(config, run_dir, seed, workers):
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: its time is part of the result
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    train(config, run_dir, TrainOptions(seed=seed, workers=workers, evaluate=False, log_interval=50, progress=False))
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def run_variant(key, iterations, work_dir, seed, workers, task="context"):
    """Train head `key` on `task` and evaluate it. On 'markers' the head is first trained on
    'context' for the same budget and the marker run starts from it (model.load_from), as
    the book's runs do (psanet_lite.book.marker_run); both trainings count in its time."""
    label, overrides = VARIANTS[key]
    run_dir = Path(work_dir) / f"{key}-seed{seed}"
    context = get_config(TASKS["context"], iterations=iterations, eval_interval=0,
                         checkpoint_interval=iterations, **overrides)
    train_seconds, cpu_seconds = _train(context, run_dir / "context", seed, workers)
    config = context
    if task == "markers":
        config = get_config(TASKS["markers"], iterations=iterations, eval_interval=0, checkpoint_interval=iterations,
                            load_from=str(run_dir / "context" / "final.pt"), **overrides)
        seconds = _train(config, run_dir / "markers", seed, workers)
        train_seconds, cpu_seconds = train_seconds + seconds[0], cpu_seconds + seconds[1]
    model = build_model(checkpoint=str(run_dir / task / "final.pt")).eval()
    val = build_dataset(config.data, "val")
    metrics = evaluate(model, val, config)
    return {
        "variant": key,
        "label": label,
        "task": task,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "decode_head_parameters": sum(p.numel() for p in model.decode_head.parameters()),
        "iterations": iterations,
        "batch_size": config.train.batch_size,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        **{k: metrics[k] for k in ("mIoU", "mAcc", "aAcc", "IoU", "Acc")},
        "classes": list(val.classes),
    }


def markdown(report) -> str:
    rows = report["rows"]
    lines = [
        f"# Ablation on the {report.get('task', 'context')} dataset ({report['date']})",
        "",
        f"Preset `{TASKS[report.get('task', 'context')]}`"
        + (" (each head first trained on the context dataset, then from those weights)"
           if report.get("task") == "markers" else "") + ", {rows[0]['iterations']} iterations of batch {rows[0]['batch_size']} "
        f"per variant (seed {report['seed']}), validation split ({report['val_images']} images), "
        f"{report['machine']}. Command: `{report['command']}`.",
        "",
        "| head | parameters | decode head | train CPU (s) | train wall (s) | mIoU | mAcc | aAcc | "
        + " | ".join(f"IoU {c}" for c in rows[0]["classes"]) + " |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(rows[0]["classes"]),
    ]
    for r in rows:
        ious = " | ".join("-" if v is None else f"{100 * v:.1f}" for v in r["IoU"])
        lines.append(f"| {r['label']} | {r['parameters'] / 1e6:.3f}M | {r['decode_head_parameters'] / 1e6:.3f}M "
                     f"| {r['train_cpu_seconds']:.0f} | {r['train_seconds']:.0f} | {100 * r['mIoU']:.1f} "
                     f"| {100 * r['mAcc']:.1f} | {100 * r['aAcc']:.1f} | {ious} |")
    lines += [
        "",
        "Train CPU: CPU time of the training process (the data-loading worker runs in a process of its own). "
        "Train wall: elapsed time, which grows with whatever else the machine runs"
        + (f" (load average {report['load_average']})." if "load_average" in report else "."),
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=get_config("psanet_lite_context").train.iterations)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the budget assumes 2 CPU cores)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=list(TASKS), default="context",
                        help="'markers' trains each head on 'context' first, then on 'markers' from it")
    parser.add_argument("--work-dir", default="runs/ablation_context")
    parser.add_argument("--out", default=str(RESULTS), help="folder for ablation_context.json / .md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.variants.split(",")]
    unknown = set(keys) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")

    load_before = os.getloadavg()[0]
    rows = []
    for key in keys:
        row = run_variant(key, args.iterations, args.work_dir, args.seed, args.workers, args.task)
        rows.append(row)
        print(f"{row['label']:<20} mIoU {100 * row['mIoU']:5.1f}  ({row['train_seconds']:.0f} s training)", flush=True)

    report = {
        "rows": rows,
        "date": datetime.date.today().isoformat(),
        "seed": args.seed,
        "task": args.task,
        "val_images": len(build_dataset(get_config(TASKS[args.task]).data, "val")),
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
                   f"{args.threads} torch threads, torch {torch.__version__}",
        "command": f"python benchmarks/ablation_context.py --task {args.task} --iterations {args.iterations} "
                   f"--threads {args.threads} --seed {args.seed}",
        "load_average": f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = json_safe(report)  # NaN (a class absent from labels and predictions) -> null
    stem = "ablation_context" if args.task == "context" else f"ablation_{args.task}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
