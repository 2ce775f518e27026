"""The paper's ablation in miniature, with its related work: which context head reads what?

Trains the book's small PSANet once per head of psanet_lite.book.VARIANTS with the same
budget (iterations, batch, seed) and evaluates each on the validation split: an FCN head
(no context), global pooling (ParseNet), pyramid pooling (PSPNet), non-local
self-attention, PSA collect, distribute and bi-direction (the paper's PSANet), each
sized to about the PSA head's parameter count. The paper's ablation compares the PSA
heads against the network without PSA on ADE20K.

--task context: the context dataset, where one coloured cue band more than 76 px from
every object decides the class of all objects of an image (data/README.md), beyond the
74 px reach of the FCN network's receptive field.

--task markers (the book's runs): each head is trained on the context dataset for
--context-iterations, then from those weights on the marker dataset for --iterations,
where an object's shape selects the offset of the marker that decides its class. For
heads with attention (PSA, non-local) it also measures where the attention goes: the
median share of each object's deciding marker and of its decoy at the object's centre,
against uniform attention (psanet_lite.engine.attention_shares).

    python benchmarks/ablation_context.py                                # context, preset budget, seed 0
    python benchmarks/ablation_context.py --task markers --seeds 0,1,2 --threads 1 &
    python benchmarks/ablation_context.py --task markers --seeds 0,1,2 --threads 1    # a second process shares the jobs

Each (head, seed) is one job in --work-dir (default runs/ablation_<task>, ignored by git):
a process takes a job by creating its folder, so processes started with the same command
share the work, and a job whose result.json exists is read, not trained again (remove the
work dir to start over). The process that finds every job done writes
benchmarks/results/ablation_<task>.json and .md: per head the mean and standard
deviation over the seeds, and every run's row.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from psanet_lite.book import BOOK_ITERATIONS, MARKER_ITERATIONS, TASKS, VARIANTS  # the heads, defined once
from psanet_lite.build import build_model
from psanet_lite.configs import get_config
from psanet_lite.data import build_dataset, build_eval_transforms
from psanet_lite.engine import TrainOptions, evaluate, marker_attention_shares, median_shares, train
from psanet_lite.engine.run_log import json_safe

RESULTS = Path(__file__).resolve().parent / "results"
RESULT_FILE = "result.json"  # a job's row, written last


def _train(config, run_dir, seed, workers):
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    train(config, run_dir, TrainOptions(seed=seed, workers=workers, evaluate=False, log_interval=50, progress=False))
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def _evaluate(run_dir, config, val_images=None):
    """The trained model, its validation split (the first val_images, default all) and its metrics."""
    model = build_model(checkpoint=str(run_dir / "final.pt")).eval()
    val = build_dataset(config.data, "val")
    if val_images is not None:
        val = type(val)(val.split, length=val_images, size=val.size, seed=val.seed)
    return model, val, evaluate(model, val, config)


def run_variant(key, run_dir, seed, workers, task="context", iterations=1000, context_iterations=BOOK_ITERATIONS,
                attention_images=100, val_images=None):
    """Train head `key` on `task` into run_dir and evaluate it; its row of the report.

    On 'markers' the head is first trained on 'context' for context_iterations and the
    marker run starts from it (model.load_from), as the book's runs do
    (psanet_lite.book.marker_run); both trainings count in its time, and the context
    model's mIoU is reported too."""
    label, overrides = VARIANTS[key]
    first = iterations if task == "context" else context_iterations
    context = get_config(TASKS["context"], iterations=first, eval_interval=0, checkpoint_interval=first, **overrides)
    wall, cpu = _train(context, run_dir / "context", seed, workers)
    model, val, metrics = _evaluate(run_dir / "context", context, val_images)
    row = {"variant": key, "label": label, "task": task, "seed": seed,
           "parameters": sum(p.numel() for p in model.parameters()),
           "decode_head_parameters": sum(p.numel() for p in model.decode_head.parameters()),
           "context_iterations": first, "context_mIoU": metrics["mIoU"], "batch_size": context.train.batch_size}
    if task == "markers":
        config = get_config(TASKS["markers"], iterations=iterations, eval_interval=0, checkpoint_interval=iterations,
                            load_from=str(run_dir / "context" / "final.pt"), **overrides)
        seconds = _train(config, run_dir / "markers", seed, workers)
        wall, cpu = wall + seconds[0], cpu + seconds[1]
        model, val, metrics = _evaluate(run_dir / "markers", config, val_images)
        if hasattr(model.decode_head, "attention_maps"):
            shares = marker_attention_shares(model, val, build_eval_transforms(config.data), images=attention_images)
            row["attention"] = [{"branch": branch, "shape": shape, **summary}
                                for (branch, shape), summary in median_shares(shares).items()]
    return {**row, "iterations": iterations if task == "markers" else first, "val_images": len(val),
            "train_seconds": round(wall, 1), "train_cpu_seconds": round(cpu, 1),
            **{k: metrics[k] for k in ("mIoU", "mAcc", "aAcc", "IoU", "Acc")}, "classes": list(val.classes)}

def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(rows):
    """Per head, in VARIANTS order: mean and standard deviation over its seeds of the
    scores, training time and attention medians; parameters (the same for every seed)."""
    out = []
    for key in [k for k in VARIANTS if any(r["variant"] == k for r in rows)]:
        runs = [r for r in rows if r["variant"] == key]
        entry = {"variant": key, "label": runs[0]["label"], "seeds": [r["seed"] for r in runs],
                 "parameters": runs[0]["parameters"], "decode_head_parameters": runs[0]["decode_head_parameters"]}
        for field in ("mIoU", "context_mIoU", "train_seconds", "train_cpu_seconds"):
            entry[field] = _mean_std([r[field] for r in runs])
        if "attention" in runs[0]:
            entry["attention"] = [
                {"branch": a["branch"], "shape": a["shape"],
                 **{t: _mean_std([next(b[t] for b in r["attention"] if (b["branch"], b["shape"]) == (a["branch"], a["shape"]))
                                  for r in runs]) for t in ("deciding", "decoy")}}
                for a in runs[0]["attention"]]
        out.append(entry)
    return out


def _pm(stat, scale=100.0, digits=1):
    return "-" if stat is None else f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"


def _attention_cell(entry, target):
    if "attention" not in entry:
        return "-"
    parts = []
    for a in entry["attention"]:
        if a[target] is not None:
            shape = "both shapes" if a["shape"] == "all" else a["shape"] + "s"
            parts.append(f"{a['branch']}, {shape}: {_pm(a[target], 1.0)}x")
    return "<br>".join(parts)


def markdown(report) -> str:
    task = report["task"]
    summary, rows = report["summary"], report["rows"]
    first = rows[0]
    budget = (f"{first['context_iterations']} iterations on the context dataset, then from those weights "
              f"{first['iterations']} on the marker dataset" if task == "markers"
              else f"{first['iterations']} iterations")
    lines = [
        f"# Ablation on the {task} dataset ({report['date']})",
        "",
        f"Preset `{TASKS[task]}`: {budget}, batch {first['batch_size']}, per head and seed "
        f"(seeds {', '.join(map(str, report['seeds']))}); validation split ({report['val_images']} images); "
        f"{report['machine']}. Command: `{report['command']}`.",
        "",
        "Mean ± standard deviation over the seeds.",
        "",
    ]
    if task == "markers":
        lines += ["| head | parameters | train CPU (s) | mIoU on context | mIoU on markers "
                  "| attention on the deciding marker / uniform | on the decoy / uniform |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for e in summary:
            lines.append(f"| {e['label']} | {e['parameters'] / 1e6:.3f}M | {_pm(e['train_cpu_seconds'], 1.0, 0)} "
                         f"| {_pm(e['context_mIoU'])} | {_pm(e['mIoU'])} | {_attention_cell(e, 'deciding')} "
                         f"| {_attention_cell(e, 'decoy')} |")
        lines += ["", f"Attention: at each object's centre cell, the median over the objects of "
                  f"{report['attention_images']} validation images of the weight on its deciding marker's cells (or its decoy's), divided by those "
                  "cells' share of the map; 1 is what uniform attention gives."]
    else:
        lines += ["| head | parameters | decode head | train CPU (s) | mIoU |", "|---|---:|---:|---:|---:|"]
        for e in summary:
            lines.append(f"| {e['label']} | {e['parameters'] / 1e6:.3f}M | {e['decode_head_parameters'] / 1e6:.3f}M "
                         f"| {_pm(e['train_cpu_seconds'], 1.0, 0)} | {_pm(e['mIoU'])} |")
    lines += [
        "",
        "Train CPU: CPU time of the training process (both trainings on 'markers'), which does not grow "
        "with what else the machine runs; train wall, in the table below, does"
        + (f" (load average {report['load_average']})." if "load_average" in report else "."),
        "",
        "## Every run",
        "",
        "| head | seed | train wall (s) | mIoU | " + " | ".join(f"IoU {c}" for c in first["classes"]) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(first["classes"]),
    ]
    for r in rows:
        ious = " | ".join("-" if v is None else f"{100 * v:.1f}" for v in r["IoU"])
        lines.append(f"| {r['label']} | {r['seed']} | {r['train_seconds']:.0f} | {100 * r['mIoU']:.1f} | {ious} |")
    return "\n".join(lines) + "\n"


def _write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), default="context",
                        help="'markers' trains each head on 'context' first, then on 'markers' from it")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"steps on the task (default: the preset's on context, {MARKER_ITERATIONS} on markers)")
    parser.add_argument("--context-iterations", type=int, default=BOOK_ITERATIONS,
                        help="on markers: the steps of the context run it starts from")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the budget assumes 2 CPU cores)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading processes")
    parser.add_argument("--attention-images", type=int, default=100, help="validation images the attention is measured on")
    parser.add_argument("--val-images", type=int, default=None,
                        help="validation images scored (default: the whole split, 500); fewer for a quick check")
    parser.add_argument("--work-dir", default=None, help="default runs/ablation_<task>")
    parser.add_argument("--out", default=str(RESULTS), help="folder for ablation_<task>.json / .md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.variants.split(",")]
    unknown = set(keys) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    iterations = args.iterations or (get_config(TASKS["context"]).train.iterations if args.task == "context"
                                      else MARKER_ITERATIONS)
    work_dir = Path(args.work_dir or f"runs/ablation_{args.task}")
    work_dir.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()[0]
    jobs = [(seed, key) for seed in seeds for key in keys]
    for seed, key in jobs:
        run_dir = work_dir / f"{key}-seed{seed}"
        try:
            run_dir.mkdir()  # taking the job; an existing folder is another process's (or done)
        except FileExistsError:
            continue
        row = run_variant(key, run_dir, seed, args.workers, args.task, iterations, args.context_iterations,
                          args.attention_images, args.val_images)
        _write_atomic(run_dir / RESULT_FILE, json.dumps(json_safe(row), indent=1))
        print(f"{row['label']:<32} seed {seed}  mIoU {100 * row['mIoU']:5.1f}  ({row['train_seconds']:.0f} s training)",
              flush=True)

    done = [work_dir / f"{key}-seed{seed}" / RESULT_FILE for seed, key in jobs]
    missing = [path.parent.name for path in done if not path.is_file()]
    if missing:
        print(f"{len(missing)} jobs are still running in other processes ({', '.join(missing)}); "
              "the last process to finish writes the report")
        return
    rows = [json.loads(path.read_text()) for path in done]
    rows.sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
    command = (f"python benchmarks/ablation_context.py --task {args.task} --iterations {iterations}"
               + (f" --context-iterations {args.context_iterations}" if args.task == "markers" else "")
               + f" --seeds {args.seeds} --threads {args.threads}")
    report = {
        "date": datetime.date.today().isoformat(),
        "task": args.task,
        "seeds": seeds,
        "val_images": rows[0].get("val_images") or len(build_dataset(get_config(TASKS[args.task]).data, "val")),
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
                   f"{args.threads} torch threads per process, torch {torch.__version__}",
        "command": command,
        "attention_images": args.attention_images,
        "load_average": f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "summary": summarise(rows),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = json_safe(report)  # NaN (a class absent from labels and predictions) -> null
    _write_atomic(out / f"ablation_{args.task}.json", json.dumps(report, indent=1))
    _write_atomic(out / f"ablation_{args.task}.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
