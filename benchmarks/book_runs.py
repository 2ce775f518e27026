"""How the book's runs train fastest on a CPU: one at a time, or two side by side.

The book trains several small models while it builds (chapters 6 and 7). This script
trains two of them (the context runs of --variants, evaluation off, --iterations steps
each) three ways, every training in a fresh process, and reports each way's wall time and
its speed against the first:

- `one at a time, loader process`: one after the other, each with every core's thread and
  a data-loading process beside it (how the book trained before `train_runs`);
- `one at a time`: the same, the data drawn in the training process (`workers=0`, what
  `context_run` does now);
- `side by side`: both at once, cores // 2 threads each, data in-process (`train_runs`).

The three ways train the same weights up to the thread count: the sampler seeds every
sample by its place in the data order, not by the process that draws it.

    python benchmarks/book_runs.py                  # 150 iterations of fcn and pool
    python benchmarks/book_runs.py --iterations 2   # a smoke run

Results: benchmarks/results/book_runs-cpu-<cores>core-<date>.json and .md.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from timing import write_results

# name: (trainings at once, data-loading processes per training)
WAYS = {"one at a time, loader process": (1, 1), "one at a time": (1, 0), "side by side": (2, 0)}


def child(variant: str, iterations: int, threads: int, workers: int, folder: str) -> None:
    """One training, in this process."""
    from psanet_lite.book import book_config
    from psanet_lite.engine.trainer import TrainOptions, train

    torch.set_num_threads(threads)
    config = book_config(variant, iterations)
    train(config, folder, TrainOptions(seed=0, workers=workers, evaluate=False, log_interval=iterations,
                                       keep_checkpoints=1, progress=False))


def start(variant: str, iterations: int, threads: int, workers: int, folder: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, "--child", variant, str(iterations), str(threads), str(workers), str(folder)]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, error = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"book_runs.py: a training process failed:\n{error[-2000:]}")


def way(name: str, variants, iterations: int, cores: int, scratch: Path) -> float:
    """Wall seconds for training every variant `name`'s way (a key of WAYS)."""
    at_once, workers = WAYS[name]
    threads = max(cores // at_once, 1)
    begin = time.perf_counter()
    for first in range(0, len(variants), at_once):
        batch = variants[first:first + at_once]
        for process in [start(v, iterations, threads, workers, scratch / f"{name}-{v}") for v in batch]:
            finish(process)
    return time.perf_counter() - begin


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="fcn,pool", help="two comma-separated keys of psanet_lite.book.VARIANTS")
    parser.add_argument("--iterations", type=int, default=150, help="optimizer steps per run (batch 8)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores to use (default: all)")
    parser.add_argument("--out", default=None, help="folder for book_runs.json / .md (default benchmarks/results)")
    parser.add_argument("--child", nargs=5, metavar=("VARIANT", "ITERATIONS", "THREADS", "WORKERS", "FOLDER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, iterations, threads, workers, folder = args.child
        child(variant, int(iterations), int(threads), int(workers), folder)
        return
    variants = [v.strip() for v in args.variants.split(",")]
    if len(variants) != 2 or args.iterations < 1 or args.cores < 2:
        parser.error(f"expected two variants, iterations >= 1 and cores >= 2, got {variants}, "
                     f"{args.iterations} and {args.cores}")

    with tempfile.TemporaryDirectory() as scratch:
        seconds = {name: way(name, variants, args.iterations, args.cores, Path(scratch)) for name in WAYS}
    first = seconds[next(iter(WAYS))]
    rows = [{"way": name, "seconds": s, "speed_vs_first": first / s} for name, s in seconds.items()]
    command = f"python benchmarks/book_runs.py --variants {args.variants} --iterations {args.iterations}"
    machine = f"{args.cores} of {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    result = {"date": datetime.date.today().isoformat(), "command": command, "machine": machine,
              "torch": torch.__version__, "load_average_at_end": os.getloadavg()[0], "variants": variants,
              "iterations": args.iterations, "rows": rows}
    text = "\n".join([
        f"# Training two of the book's runs ({', '.join(variants)}, {args.iterations} iterations each)", "",
        f"{machine}, torch {torch.__version__}, {result['date']}. Command: `{command}`. "
        f"Load average at the end: {result['load_average_at_end']:.1f}.", "",
        "| way | wall (s) | speed against the first |", "|---|---:|---:|",
        *[f"| {r['way']} | {r['seconds']:.1f} | {r['speed_vs_first']:.2f}x |" for r in rows], ""])
    name = f"book_runs-cpu-{args.cores}core-{result['date']}.json"
    write_results(result, text, "book_runs", torch.device("cpu"),
                  out=Path(args.out) / "book_runs.json" if args.out else Path(__file__).resolve().parent / "results" / name)


if __name__ == "__main__":
    main()
