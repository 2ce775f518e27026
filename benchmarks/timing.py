"""What every benchmark script shares: the device's name, the one timer, peak memory,
the device's copy and matmul rates, and where results are written.

    from timing import time_call, peak_bytes, write_results   # a script in benchmarks/

Python puts a script's own folder first on sys.path, so `python benchmarks/X.py`
finds this module without a package or a path edit.

Timing: median of `reps` calls after `warmup` untimed ones; CUDA events on a GPU,
wall clock on a CPU. Peak memory: the most tensor memory alive at once during a call,
above what was alive before it (CUDA: the allocator's peak; CPU: the running total of
torch.profiler's allocation events, which process RSS or tracemalloc would not see).
"""

import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

# The reference configurations' shapes after the head's shrink by 2 of the stride-8
# features. name: (H, W, mh, mw) of the shrunk feature map and the mask.
SHAPES = {
    "cityscapes-512x1024": (32, 64, 97, 97),
    "cityscapes-769x769": (49, 49, 97, 97),
    "ade20k-512x512": (32, 32, 66, 66),
    "voc-512x512": (32, 32, 97, 97),
}


def device_label(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "-").lower()
    return f"cpu-{torch.get_num_threads()}core"


def device_description(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} torch threads"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device, reps, warmup):
    """Median seconds of fn() over reps runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def time_alternating(fns, device, reps, warmup=1):
    """Per-round seconds of each fn, the fns called in turn, one call each per round, after
    `warmup` untimed rounds: [[s_fn0, s_fn1, ...] for each of `reps` rounds]. Functions
    compared this way share whatever load the machine has at each moment."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    return [[time_call(fn, device, 1, 0) for fn in fns] for _ in range(reps)]


def cpu_peak_bytes(fn):
    """Peak CPU tensor bytes alive during fn() above the level before it (torch.profiler)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()

    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node.children)

    allocations = sorted(
        (node for node in walk(prof.profiler.kineto_results.experimental_event_tree()) if node.tag == _EventType.Allocation),
        key=lambda node: node.start_time_ns,
    )
    if not allocations:
        return 0
    first = allocations[0].extra_fields
    baseline = first.total_allocated - first.alloc_size
    return max(node.extra_fields.total_allocated for node in allocations) - baseline


def peak_bytes(fn, device):
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return cpu_peak_bytes(fn)


def copy_bandwidth(device, nbytes=1 << 30, reps=10):
    """Device-to-device copy bandwidth in bytes/s (bytes read + bytes written)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), device, reps, warmup=2)
    return 2 * nbytes / seconds


def matmul_rate(device, dtype, size, reps=10):
    """Measured FLOP/s of a dense [size, size] x [size, size] matmul."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = time_call(lambda: a @ b, device, reps=reps, warmup=2)
    return 2 * size**3 / seconds



def write_results(result, text, script, device, out=None, quiet=False):
    """Print the Markdown text (unless quiet); write result as JSON to out (default
    benchmarks/results/<script>-<device>-<date>[-<dtype>].json, the dtype named unless
    float32, so runs in two precisions on one day keep both files) and text beside it as .md."""
    if not quiet:
        print()
        print(text)
    precision = "" if result.get("dtype", "float32") == "float32" else f"-{result['dtype']}"
    out = Path(out) if out else (
        Path(__file__).resolve().parent / "results"
        / f"{script}-{device_label(device)}-{datetime.date.today().isoformat()}{precision}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    if not quiet:
        print(f"wrote {out} and {out.with_suffix('.md')}")
