"""Fused PSA aggregation against the unfused composition: time and memory.

    python benchmarks/psa.py                         # GPU: every case below; CPU: ADE20K, batch 2
    python benchmarks/psa.py --shapes all --batches 2,8 --dtype bfloat16
    python benchmarks/psa.py --full-res              # add Cityscapes 1024x2048 without the shrink

unfused = psa_aggregate(backend='dense'): psa_mask (its fastest backend here) into
[N, HW, HW], softmax over dim 1, bmm, what every PSANet implementation runs.
fused   = the memory-saving route for a given map (ops/backends.py, save_memory): the CUDA
kernels on a GPU with CuPy, else the torch blocked-columns fallback; on a GPU also
fused-torch = psa_aggregate(backend='torch'), the fallback, for comparison.
From the map's factors (the reduced features U and the last 1x1 convolution's weight W,
what PSAHead's torch route passes), side by side in a second table:
conv+unfused = psa_aggregate(F, (U, W), backend='dense'), the 1x1 product then the above,
fused-logits = psa_aggregate(F, (U, W), backend='torch'), the logits on the fly (not at full
resolution on a GPU), and where the tensor-core kernel runs the dtype (float16 from sm_75,
bfloat16 from sm_80: --dtype bfloat16) fused-logits-cupy = backend='cupy'.
All in 'collect' mode with softmax='reference' (distribute costs the same), C = 512.

Cases: the shapes PSAHead sees after the shrink (benchmarks/timing.py SHAPES:
Cityscapes 512x1024 -> 32x64 mask 97, 769x769 -> 49x49 mask 97, ADE20K 32x32 mask 66,
VOC 32x32 mask 97) at batch 2 and 8; with --full-res (default on a GPU) Cityscapes
1024x2048 at output stride 8 without the shrink: 128x256 map with the presets'
97x97 mask, batch 1 and 2. There the dense matrix is 4 GiB per image in float32 and
the attention map 1.2 GB (9409 cells per position; an over-completed 255x511 mask
would make it 17 GB, four times the matrix: book chapter 4, exercise 4);
a case whose estimated memory exceeds what is free is skipped and says so.

Measured per case and implementation:
- time: median of --reps runs after a warm-up (benchmarks/timing.py time_call:
  CUDA events on a GPU, wall clock on CPU). forward under torch.no_grad();
  forward+backward = a training forward and backward(grad) into fresh .grad tensors.
- peak: the most tensor memory alive at once during the call above what was alive
  before (inputs excluded). CUDA: torch.cuda.max_memory_allocated; CPU: the allocator
  running total from torch.profiler allocation events (profile_memory=True), in a
  separate untimed call. `scratch` = peak minus the tensors every implementation must
  return (output; for forward+backward also the input gradients, as big as the inputs).
- rates against the device measured in the same run (copy bandwidth: a large copy,
  bytes read + written; matmul rate: torch.mm of square matrices in the same dtype):
  bandwidth = compulsory bytes / time (each input read once, each output written once;
  backward: grad_out, features, attention, out read, both gradients written) and
  FLOP rate = window multiply-adds / time (2*N*C*W per pass, W = written cells of the
  attention matrix, one pass forward, two backward), the same work for both
  implementations, so the rates compare like with like.

Writes JSON (--out, default benchmarks/results/psa-<device>-<date>[-<dtype>].json, the dtype
named unless float32) and the table as Markdown beside it.
"""

import argparse
import datetime
import os
import statistics
import sys

import torch

from timing import (SHAPES, copy_bandwidth, device_description, matmul_rate, peak_bytes, synchronize,
                    time_alternating, time_call, write_results)

from psanet_lite.ops import aggregate_logits_cupy, psa_aggregate
from psanet_lite.ops.backends import AGGREGATE_BACKENDS, choose_backend

CHANNELS = 512
FULL_RES = {"cityscapes-1024x2048-full": (128, 256, 97, 97)}  # (H, W, mh, mw)
FULL_RES_BATCHES = (1, 2)
CPU_DEFAULT = ("ade20k-512x512", 2)
TARGETS = {"peak_ratio": 4.0, "speedup_forward_backward": 1.5, "full_res_batch2_gib": 40.0, "full_res_peak_ratio": 10.0}


def written_cells(height, width, mh, mw):
    """Written entries of one image's attention matrix: sum over columns of the cells inside."""
    def inside(size, msize):
        half = (msize - 1) // 2
        return sum(min(msize - 1, half + size - 1 - p) - max(0, half - p) + 1 for p in range(size))

    return inside(height, mh) * inside(width, mw)


def free_bytes(device):
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) * 1024


IMPLEMENTATIONS = {"unfused": "dense", "fused": None, "fused-torch": "torch"}


def fused_backend(device):
    """The route PSAHead(fused=True) runs: 'cupy' on CUDA when CuPy works, else 'torch'."""
    return choose_backend(device, None, AGGREGATE_BACKENDS, save_memory=True)


def estimated_bytes(impl, batch, height, width, mh, mw, itemsize):
    """Rough need of one forward+backward on top of the inputs (for skipping, not reporting)."""
    hw, cells = height * width, mh * mw
    grads_and_out = (batch * cells * hw + 2 * batch * CHANNELS * hw) * itemsize
    if impl == "unfused":
        return grads_and_out + 4 * batch * hw * hw * itemsize  # scores, softmax, their grads
    return grads_and_out + 8 * batch * hw * 4  # softmax statistics, delta


def calls(backend, features, attention, mask):
    """(forward, forward_backward) of psa_aggregate(features, attention); attention is the map
    or the pair (U, W). forward runs under no_grad; forward_backward into fresh .grad tensors."""
    leaves = [t.detach().requires_grad_() for t in (features, *(attention if isinstance(attention, tuple) else [attention]))]
    grad = torch.randn_like(features)

    def forward():
        with torch.no_grad():
            return psa_aggregate(features, attention, "collect", mask, backend=backend)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        given = tuple(leaves[1:]) if isinstance(attention, tuple) else leaves[1]
        psa_aggregate(leaves[0], given, "collect", mask, backend=backend).backward(grad)
        for leaf in leaves:
            leaf.grad = None

    return forward, forward_backward


def measure(backend, features, attention, mask, device, reps):
    forward, forward_backward = calls(backend, features, attention, mask)
    row = {
        "forward_s": time_call(forward, device, reps, warmup=1),
        "forward_backward_s": time_call(forward_backward, device, reps, warmup=1),
    }
    row["forward_peak_bytes"] = peak_bytes(forward, device)
    row["forward_backward_peak_bytes"] = peak_bytes(forward_backward, device)
    return row


def run_case(name, height, width, mh, mw, batch, device, dtype, reps, machine):
    itemsize = torch.finfo(dtype).bits // 8
    hw, cells = height * width, mh * mw
    feature_bytes = batch * CHANNELS * hw * itemsize
    attention_bytes = batch * cells * hw * itemsize
    case = {
        "shape": name, "map": [height, width], "mask": [mh, mw], "batch": batch,
        "channels": CHANNELS, "dtype": str(dtype).replace("torch.", ""),
        "input_bytes": feature_bytes + attention_bytes,
        "dense_matrix_bytes": batch * hw * hw * itemsize,
    }
    free = free_bytes(device) - case["input_bytes"]
    if free < 0:
        case["skipped"] = f"the inputs alone need {case['input_bytes'] / 2**30:.1f} GiB, {free_bytes(device) / 2**30:.1f} GiB free"
        return case
    features = torch.randn(batch, CHANNELS, height, width, device=device, dtype=dtype)
    attention = torch.randn(batch, cells, height, width, device=device, dtype=dtype)
    pairs = batch * written_cells(height, width, mh, mw)
    flops = {"forward": 2 * CHANNELS * pairs, "forward_backward": 6 * CHANNELS * pairs}
    traffic = {
        "forward": case["input_bytes"] + feature_bytes,
        # forward: F, A read, out written; backward: grad_out, F, A, out read, dF, dA written
        "forward_backward": 6 * feature_bytes + 3 * attention_bytes,
    }
    must_return = {"forward": feature_bytes, "forward_backward": feature_bytes + case["input_bytes"]}
    impls = ("unfused", "fused", "fused-torch") if device.type == "cuda" else ("unfused", "fused")
    case["fused_backend"] = fused_backend(device)
    for impl in impls:
        if impl == "fused-torch" and name in FULL_RES:
            # Seconds per call on an H100 (1.3 s forward at N=1): the comparison that
            # matters here is the CUDA kernel against the dense matrix.
            case[impl] = {"skipped": "the fallback is not timed at full resolution on a GPU"}
            continue
        need = estimated_bytes(impl, batch, height, width, mh, mw, itemsize)
        if need > 0.9 * free:
            case[impl] = {"skipped": f"needs about {need / 2**30:.1f} GiB beyond the inputs, {free / 2**30:.1f} GiB free"}
            continue
        try:
            row = measure(IMPLEMENTATIONS[impl] or fused_backend(device), features, attention, (mh, mw), device, reps)
        except torch.cuda.OutOfMemoryError as error:
            case[impl] = {"skipped": f"out of memory: {str(error).splitlines()[0]}"}
            continue
        finally:
            synchronize(device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        for kind in ("forward", "forward_backward"):
            seconds = row[f"{kind}_s"]
            row[f"{kind}_scratch_bytes"] = row[f"{kind}_peak_bytes"] - must_return[kind]
            row[f"{kind}_bandwidth_fraction"] = traffic[kind] / seconds / machine["copy_bytes_per_s"]
            row[f"{kind}_flop_fraction"] = flops[kind] / seconds / machine["matmul_flop_per_s"]
            row[f"{kind}_bytes_per_s"] = traffic[kind] / seconds
            row[f"{kind}_flop_per_s"] = flops[kind] / seconds
        case[impl] = row
    if "forward_s" in case.get("unfused", {}) and "forward_s" in case.get("fused", {}):
        u, f = case["unfused"], case["fused"]
        case["speedup_forward"] = u["forward_s"] / f["forward_s"]
        case["speedup_forward_backward"] = u["forward_backward_s"] / f["forward_backward_s"]
        case["peak_ratio_forward_backward"] = u["forward_backward_peak_bytes"] / f["forward_backward_peak_bytes"]
        case["scratch_ratio_forward_backward"] = u["forward_backward_scratch_bytes"] / max(1, f["forward_backward_scratch_bytes"])
        case["peak_ratio_forward"] = u["forward_peak_bytes"] / f["forward_peak_bytes"]
    return case


def logit_routes(device, dtype, full_res):
    """(impl, backend) pairs timed from the factors: the dense baseline, the torch route
    (not at full resolution on a GPU: its thousand chunks take seconds per call there) and,
    where the tensor-core kernel runs this dtype, 'cupy' (kernels/psa_logits.cu)."""
    routes = [("conv+unfused", "dense")]
    if not (full_res and device.type == "cuda"):
        routes.append(("fused-logits", "torch"))
    if aggregate_logits_cupy.supports(dtype, device):
        routes.append(("fused-logits-cupy", "cupy"))
    return routes


def run_logits_case(case, height, width, mh, mw, batch, device, dtype, reps, full_res=False):
    """The routes from the logits' factors against conv + psa_mask + softmax + bmm, side by side.

    Inputs: F and U [N, C, H, W] and the last convolution's weight W [mh*mw, C]. 'conv+unfused'
    = psa_aggregate(F, (U, W), backend='dense'): the map by the 1x1 product, then the dense
    route; 'fused-logits' = backend 'torch': the logits on the fly (ops/aggregate_logits.py);
    'fused-logits-cupy' = backend 'cupy' in 16 bits: the tensor-core kernel
    (ops/aggregate_logits_cupy.py). Times: medians over rounds in which the routes alternate;
    each fused row's speedups: medians of its per-round ratios to conv+unfused.
    """
    features = torch.randn(batch, CHANNELS, height, width, device=device, dtype=dtype)
    factors = (torch.randn(batch, CHANNELS, height, width, device=device, dtype=dtype),
               torch.randn(mh * mw, CHANNELS, device=device, dtype=dtype) / CHANNELS**0.5)  # logits ~ N(0, 1)
    routes = {impl: calls(backend, features, factors, (mh, mw)) for impl, backend in logit_routes(device, dtype, full_res)}
    if len(routes) == 1:
        case["logits"] = {"skipped": "no route from the factors is timed here"}
        return
    logits = {impl: {} for impl in routes}
    try:
        for k, kind in enumerate(("forward", "forward_backward")):
            # the routes alternate call by call, so they share the machine's load
            rounds = time_alternating([pair[k] for pair in routes.values()], device, reps)
            for impl, seconds in zip(routes, zip(*rounds)):
                logits[impl][f"{kind}_s"] = statistics.median(seconds)
                logits[impl][f"{kind}_peak_bytes"] = peak_bytes(routes[impl][k], device)
            for column, impl in enumerate(routes):
                if impl == "conv+unfused":
                    continue
                logits[impl][f"speedup_{kind}"] = statistics.median(times[0] / times[column] for times in rounds)
                logits[impl][f"peak_ratio_{kind}"] = (logits["conv+unfused"][f"{kind}_peak_bytes"]
                                                      / logits[impl][f"{kind}_peak_bytes"])
    except torch.cuda.OutOfMemoryError as error:
        logits = {"skipped": f"out of memory: {str(error).splitlines()[0]}"}
    finally:
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    case["logits"] = logits


def markdown_logits(cases):
    mib = 2**20
    lines = ["| case | impl | fwd ms | fwd+bwd ms | fwd peak MiB | fwd+bwd peak MiB |", "|---|---|---|---|---|---|"]
    for case in cases:
        label = f"{case['shape']} {case['map'][0]}x{case['map'][1]} mask {case['mask'][0]}x{case['mask'][1]} N={case['batch']}"
        for impl, row in case.get("logits", {}).items():
            if not isinstance(row, dict):
                continue
            if "skipped" in row:
                lines.append(f"| {label} | {impl} | skipped: {row['skipped']} | | | |")
                continue
            lines.append(f"| {label} | {impl} | {row['forward_s'] * 1e3:.2f} | {row['forward_backward_s'] * 1e3:.2f} | "
                         f"{row['forward_peak_bytes'] / mib:.1f} | {row['forward_backward_peak_bytes'] / mib:.1f} |")
    return "\n".join(lines)


def markdown(cases):
    mib = 2**20
    header = ["case", "impl", "fwd ms", "fwd+bwd ms", "fwd peak MiB", "fwd+bwd peak MiB", "fwd+bwd scratch MiB",
              "fwd+bwd GB/s (of copy)", "fwd+bwd GFLOP/s (of matmul)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case in cases:
        label = f"{case['shape']} {case['map'][0]}x{case['map'][1]} mask {case['mask'][0]}x{case['mask'][1]} N={case['batch']}"
        if "skipped" in case:
            lines.append(f"| {label} | both | skipped: {case['skipped']} |" + " |" * (len(header) - 3))
            continue
        for impl in ("unfused", "fused", "fused-torch"):
            if impl not in case:
                continue
            row = case[impl]
            if impl == "fused":
                impl = f"fused ({case['fused_backend']})"
            if "skipped" in row:
                lines.append(f"| {label} | {impl} | skipped: {row['skipped']} |" + " |" * (len(header) - 3))
                continue
            lines.append("| " + " | ".join([
                label, impl,
                f"{row['forward_s'] * 1e3:.2f}", f"{row['forward_backward_s'] * 1e3:.2f}",
                f"{row['forward_peak_bytes'] / mib:.1f}", f"{row['forward_backward_peak_bytes'] / mib:.1f}",
                f"{row['forward_backward_scratch_bytes'] / mib:.1f}",
                f"{row['forward_backward_bytes_per_s'] / 1e9:.1f} ({100 * row['forward_backward_bandwidth_fraction']:.0f}%)",
                f"{row['forward_backward_flop_per_s'] / 1e9:.1f} ({100 * row['forward_backward_flop_fraction']:.0f}%)",
            ]) + " |")
    return "\n".join(lines)


def verdicts(cases):
    lines = []
    for case in cases:
        if "speedup_forward_backward" not in case:
            continue
        lines.append(
            f"{case['shape']} N={case['batch']}: fused/unfused forward {case['speedup_forward']:.2f}x, "
            f"forward+backward {case['speedup_forward_backward']:.2f}x faster (target {TARGETS['speedup_forward_backward']}x); "
            f"peak forward {case['peak_ratio_forward']:.2f}x, forward+backward "
            f"{case['peak_ratio_forward_backward']:.2f}x lower (target {TARGETS['peak_ratio']}x), "
            f"forward+backward scratch {case['scratch_ratio_forward_backward']:.1f}x lower"
        )
    for case in cases:
        for impl, row in case.get("logits", {}).items():
            if not isinstance(row, dict) or "speedup_forward_backward" not in row:
                continue
            lines.append(
                f"{case['shape']} N={case['batch']}: {impl} against conv+unfused: forward "
                f"{row['speedup_forward']:.2f}x, forward+backward {row['speedup_forward_backward']:.2f}x faster "
                f"(GPU target {TARGETS['speedup_forward_backward']}x); peak forward {row['peak_ratio_forward']:.2f}x, "
                f"forward+backward {row['peak_ratio_forward_backward']:.2f}x lower (GPU target {TARGETS['peak_ratio']}x; "
                f"{TARGETS['full_res_peak_ratio']:.0f}x at full resolution)"
            )
    for case in cases:
        fused = case.get("fused", {})
        if case["shape"] in FULL_RES and case["batch"] == 2 and "forward_backward_peak_bytes" in fused:
            total = (case["input_bytes"] + fused["forward_backward_peak_bytes"]) / 2**30
            ok = "meets" if total <= TARGETS["full_res_batch2_gib"] else "MISSES"
            lines.append(f"full resolution N=2 {case['dtype']}: fused forward+backward holds {total:.1f} GiB with its inputs "
                         f"({ok} the {TARGETS['full_res_batch2_gib']:.0f} GB target)")
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", help=f"'all' or comma-separated from {', '.join(SHAPES)} "
                                         f"(default: all on a GPU, {CPU_DEFAULT[0]} on CPU)")
    parser.add_argument("--batches", help="comma-separated batch sizes (default: 2,8 on a GPU, 2 on CPU)")
    parser.add_argument("--full-res", action=argparse.BooleanOptionalAction, default=None,
                        help="also run Cityscapes 1024x2048 unshrunk (default: on a GPU only)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--reps", type=int, help="timed repetitions (default: 10 on CUDA, 3 on CPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/psa-<device>-<date>.json)")
    return parser.parse_args(argv)


def report(argv, args, device, reps, machine, cases, load_before, complete):
    """(result, Markdown text) of the cases so far; complete=False marks a run still going."""
    on_gpu = device.type == "cuda"
    result = {
        "device": device_description(device),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/psa.py", *argv]),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "reps": reps,
        "machine": machine,
        "targets": TARGETS,
        "cases": cases,
        "complete": complete,
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
    }
    memory_method = ("torch.cuda.max_memory_allocated above the level before the call" if on_gpu else
                     "the CPU allocator running total from torch.profiler allocation events (profile_memory=True), "
                     "above the level before the call, in a separate untimed call")
    text = "\n".join([
        f"# Fused vs unfused PSA aggregation on {result['device']}",
        "",
        *([] if complete else ["**Incomplete**: the run ended, or was stopped, after the cases below.", ""]),
        f"Date: {result['date']}; torch {result['torch']}; {args.dtype}; C = {CHANNELS}; collect, softmax 'reference'; "
        f"median of {reps} timed runs after a warm-up.",
        f"Command: `{result['command']}`",
        f"Machine load average (1 min) before / after: {load_before:.1f} / {result['load_average_1min_before_after'][1]:.1f}.",
        f"Measured here: copy bandwidth {machine['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write), "
        f"matmul {machine['matmul_flop_per_s'] / 1e9:.1f} GFLOP/s.",
        f"Peak memory: {memory_method}. Scratch: peak minus the output (and, for forward+backward, "
        "the input gradients), which every implementation must allocate.",
        "GB/s: compulsory bytes / time; GFLOP/s: window multiply-adds / time (same work for both).",
        "psa_mask's torch backend keeps no index cache (issue 21); nothing persists between calls.",
        "",
        markdown(cases),
        "",
        "From the logits' factors (F, U [N, C, H, W], W [mh*mw, C]): conv+unfused = the map by the 1x1 "
        "product, psa_mask, softmax, bmm (psa_aggregate backend 'dense'); fused-logits = the logits on the fly "
        "(backend 'torch', ops/aggregate_logits.py), which stores neither the map nor the matrix; fused-logits-cupy "
        "= the same on tensor cores (backend 'cupy', 16-bit, kernels/psa_logits.cu: one kernel forward, two "
        "kernels and two matrix products backward). Peaks as above, inputs excluded.",
        "",
        markdown_logits(cases),
        "",
        *verdicts(cases),
    ]).rstrip() + "\n"
    return result, text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = device.type == "cuda"
    reps = args.reps or (10 if on_gpu else 3)
    if args.shapes in (None, "all"):
        shapes = list(SHAPES) if on_gpu or args.shapes == "all" else [CPU_DEFAULT[0]]
    else:
        shapes = args.shapes.split(",")
    for name in shapes:
        if name not in SHAPES:
            raise SystemExit(f"unknown shape {name!r}; choose from {list(SHAPES)}")
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([2, 8] if on_gpu else [CPU_DEFAULT[1]])
    full_res = on_gpu if args.full_res is None else args.full_res

    load_before = os.getloadavg()[0]
    cuda = device.type == "cuda"
    machine = {
        "copy_bytes_per_s": copy_bandwidth(device, (1 << 30) if cuda else (1 << 28), reps),
        "matmul_flop_per_s": matmul_rate(device, dtype, 8192 if cuda else 1024, reps),
    }
    print(f"{device_description(device)}: copy {machine['copy_bytes_per_s'] / 1e9:.1f} GB/s, "
          f"matmul {machine['matmul_flop_per_s'] / 1e9:.1f} GFLOP/s ({args.dtype})", flush=True)
    work = [(name, *SHAPES[name], batch) for name in shapes for batch in batches]
    if full_res:
        work += [(name, *shape, batch) for name, shape in FULL_RES.items() for batch in FULL_RES_BATCHES]
    cases = []
    for name, height, width, mh, mw, batch in work:
        case = run_case(name, height, width, mh, mw, batch, device, dtype, reps, machine)
        if "skipped" not in case:
            # at full resolution each call takes long (and the torch route is not timed): fewer repetitions
            full = name in FULL_RES
            run_logits_case(case, height, width, mh, mw, batch, device, dtype, min(reps, 3) if full else reps, full)
        cases.append(case)
        print("\n".join(markdown([case]).splitlines()[2:] + markdown_logits([case]).splitlines()[2:]), flush=True)
        # what is measured so far survives a run cut short by a time limit
        write_results(*report(argv, args, device, reps, machine, cases, load_before, False), "psa", device,
                      args.out, quiet=True)

    write_results(*report(argv, args, device, reps, machine, cases, load_before, True), "psa", device, args.out)


if __name__ == "__main__":
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU-only profiler otherwise logs a GPU error
    main()
