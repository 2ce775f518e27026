"""Time and memory of PSAMask per backend at the reference configurations' shapes.

    python benchmarks/psamask.py                       # every backend usable here
    python benchmarks/psamask.py --backends torch --shapes ade20k-512 --batches 2

Shapes are those PSAHead sees after the shrink by 2 of the stride-8 features:
Cityscapes 512x1024 -> 32x64 map, mask 97x97; Cityscapes 769x769 -> 49x49, mask 97;
ADE20K 512x512 -> 32x32, mask 66x66; VOC 512x512 -> 32x32, mask 97.

Measured, per (shape, batch, backend, mode):
- forward and forward+backward time: median over --reps after one warm-up call.
  CUDA: CUDA events; CPU: wall clock. The 'reference' backend runs once (no warm-up):
  it is the slow teaching version.
- a plain copy of the same bytes, timed in the same run, beside each row: forward+backward
  writes a new matrix Y (forward) and a new gradient of the map (backward), so the copy
  is `clone()` of a tensor of each size (new memory, as the operator gets), and, stricter,
  `copy_` of the same bytes into buffers allocated beforehand; `fwd+bwd / copy` is the ratio
  of the first (issue 21's CPU target: at most 2 at the Cityscapes shape). Operator and
  copies alternate call by call, and the ratio is the median of the per-round ratios, so
  a shared machine's load falls on both alike.
- peak memory: the most tensor memory alive at once during the call, above what was
  alive before it (inputs and the index cache excluded). CUDA: torch.cuda peak
  allocated bytes. CPU: the running total of the CPU allocator recorded by
  torch.profiler's allocation events (profile_memory=True), in a separate untimed call;
  process RSS or tracemalloc would not see torch's allocations honestly.
- index tables: before issue 21 the torch backend cached int64 tables, 8 bytes per written
  entry K for the forward source, the forward target (when the mask does not cover the
  map) and the backward pair: 8*K*(3 or 4) bytes, computed here from K (the export's
  table, psanet_lite.export.lowering, has one entry per written pair). The strided
  copies that replaced them keep none: 0 bytes after.
On a GPU the script also measures the device's copy bandwidth (a large device-to-device
copy, bytes read + written) and reports each forward's achieved bandwidth, counting
the input read once and the output written once.
- the bytes that must move: forward reads the K entries of the map that land on it (K
  written pairs per image) and writes all of Y; backward reads those K entries of dY and
  writes all of dA: N*(K + HW^2) and N*(K + mh*mw*HW) elements. Forward+backward's rate
  over those bytes is set beside the copy's rate (bytes read + written by the clone of the
  same tensors, in the same rounds): issue 21's kernel target is at least 60% of it, and
  on CUDA the 'cupy' rows are checked against it and against the 'torch' rows (faster
  forward and forward+backward), each verdict written out.

Writes JSON (--out, default benchmarks/results/psamask-<device>-<date>[-<dtype>].json, the
dtype named unless float32) and the same table as Markdown beside it.
"""

import argparse
import datetime
import os
import statistics
import sys

import torch
from timing import SHAPES, copy_bandwidth, device_description, peak_bytes, time_alternating, time_call, write_results

from psanet_lite.export.lowering import psa_mask_indices
from psanet_lite.ops import available_backends, psa_mask

MODES = ("collect", "distribute")
# Where the 'reference' backend runs by default: one shape, where the target
# "torch at least 50x faster than reference" is checked.
REFERENCE_CPU_CASE = ("ade20k-512x512", 2)
SPEEDUP_TARGET = 50.0


def measure(shape_name, batch, backend, mode, device, dtype, reps):
    height, width, mh, mw = SHAPES[shape_name]
    x = torch.randn(batch, mh * mw, height, width, device=device, dtype=dtype)
    x_grad = x.clone().requires_grad_()
    is_reference = backend == "reference"
    fast_reps, warmup = (1, 0) if is_reference else (reps, 1)

    def forward():
        with torch.no_grad():
            return psa_mask(x, mode, (mh, mw), backend=backend)

    matrix = torch.randn(batch, height * width, height, width, device=device, dtype=dtype)  # also dY

    def forward_backward():
        y = psa_mask(x_grad, mode, (mh, mw), backend=backend)
        y.backward(matrix)
        x_grad.grad = None

    # Entries of Y that hold a cell of the map (per image): what must be read, each way.
    written = psa_mask_indices(height, width, mh, mw, mode, torch.device("cpu")).forward_source.numel()
    must_move = {"forward": batch * (written + (height * width) ** 2) * x.element_size(),
                 "backward": batch * (written + mh * mw * height * width) * x.element_size()}
    buffers = torch.empty_like(x), torch.empty_like(matrix)
    forward_s = time_call(forward, device, fast_reps, warmup)
    # The operator and the copies alternate, so they see the same load on a shared machine.
    rounds = time_alternating((forward_backward, lambda: (x.clone(), matrix.clone()),
                               lambda: (buffers[0].copy_(x), buffers[1].copy_(matrix))), device, fast_reps, warmup)
    forward_backward_s, copy_s, copy_into_s = (statistics.median(column) for column in zip(*rounds))
    row = {
        "shape": shape_name,
        "map": [height, width],
        "mask": [mh, mw],
        "batch": batch,
        "backend": backend,
        "mode": mode,
        "dtype": str(dtype).replace("torch.", ""),
        "reps": fast_reps,
        "forward_ms": forward_s * 1e3,
        "forward_backward_ms": forward_backward_s * 1e3,
        "forward_peak_bytes": peak_bytes(forward, device),
        "forward_backward_peak_bytes": peak_bytes(forward_backward, device),
        "input_bytes": x.numel() * x.element_size(),
        "output_bytes": batch * (height * width) ** 2 * x.element_size(),
        "copy_ms": copy_s * 1e3,
        "copy_into_ms": copy_into_s * 1e3,
        "forward_backward_over_copy": statistics.median(op / copy for op, copy, _ in rounds),
        "written_pairs": written,
        "must_move_bytes_forward": must_move["forward"],
        "must_move_bytes_forward_backward": must_move["forward"] + must_move["backward"],
        "copy_bytes": 2 * (x.numel() * x.element_size() + matrix.numel() * matrix.element_size()),
        "index_table_bytes_before": None,
        "index_table_bytes_after": None,
    }
    row["forward_backward_must_move_bytes_per_s"] = row["must_move_bytes_forward_backward"] / forward_backward_s
    row["copy_bytes_per_s"] = row["copy_bytes"] / copy_s
    if backend == "torch":
        row["index_table_bytes_before"] = 8 * written * (3 if written == (height * width) ** 2 else 4)
        row["index_table_bytes_after"] = 0
    if device.type == "cuda":
        row["forward_bandwidth_bytes_per_s"] = (row["input_bytes"] + row["output_bytes"]) / forward_s
    return row


def markdown_table(rows, device):
    mib = 2**20
    header = ["shape (map, mask)", "batch", "backend", "mode", "fwd ms", "fwd+bwd ms", "copy ms (clone / into)",
              "fwd+bwd / copy", "fwd+bwd GB/s (must move) / copy GB/s", "fwd peak MiB", "fwd+bwd peak MiB", "in/out MiB", "index tables MiB before / after"]
    if device.type == "cuda":
        header.append("fwd GB/s")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            f"{row['shape']} ({row['map'][0]}x{row['map'][1]}, {row['mask'][0]}x{row['mask'][1]})",
            str(row["batch"]),
            row["backend"],
            row["mode"],
            f"{row['forward_ms']:.2f}",
            f"{row['forward_backward_ms']:.2f}",
            f"{row['copy_ms']:.2f} / {row['copy_into_ms']:.2f}",
            f"{row['forward_backward_over_copy']:.2f}",
            f"{row['forward_backward_must_move_bytes_per_s'] / 1e9:.1f} / {row['copy_bytes_per_s'] / 1e9:.1f}",
            f"{row['forward_peak_bytes'] / mib:.1f}",
            f"{row['forward_backward_peak_bytes'] / mib:.1f}",
            f"{row['input_bytes'] / mib:.1f} / {row['output_bytes'] / mib:.1f}",
            "" if row["index_table_bytes_before"] is None
            else f"{row['index_table_bytes_before'] / mib:.1f} / {row['index_table_bytes_after'] / mib:.1f}",
        ]
        if device.type == "cuda":
            cells.append(f"{row['forward_bandwidth_bytes_per_s'] / 1e9:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


BANDWIDTH_TARGET = 0.6  # issue 21: the kernel's fwd+bwd moves its bytes at >= 60% of the copy's rate


def _same_case(rows, first, second):
    """(row of backend `first`, row of backend `second`) for every case (shape, batch, mode) both ran."""
    for a in (row for row in rows if row["backend"] == first):
        for b in rows:
            if b["backend"] == second and all(b[k] == a[k] for k in ("shape", "batch", "mode")):
                yield a, b


def kernel_targets(rows):
    """Issue 21's targets for the 'cupy' rows, per (shape, batch, mode): faster than 'torch'
    forward and forward+backward, and forward+backward's rate over the bytes that must move
    at least BANDWIDTH_TARGET of the same-bytes copy's rate in the same rounds."""
    found = []
    for kernel, gather in _same_case(rows, "cupy", "torch"):
        share = kernel["forward_backward_must_move_bytes_per_s"] / kernel["copy_bytes_per_s"]
        found.append({
            "shape": kernel["shape"],
            "batch": kernel["batch"],
            "mode": kernel["mode"],
            "forward_speedup_over_torch": gather["forward_ms"] / kernel["forward_ms"],
            "forward_backward_speedup_over_torch": gather["forward_backward_ms"] / kernel["forward_backward_ms"],
            "forward_backward_share_of_copy_rate": share,
            "met": gather["forward_ms"] > kernel["forward_ms"]
            and gather["forward_backward_ms"] > kernel["forward_backward_ms"] and share >= BANDWIDTH_TARGET,
        })
    return found


def speedups(rows):
    """torch over reference time ratios wherever both ran on the same case."""
    return [{"shape": ref["shape"], "batch": ref["batch"], "mode": ref["mode"],
             "forward": ref["forward_ms"] / fast["forward_ms"],
             "forward_backward": ref["forward_backward_ms"] / fast["forward_backward_ms"]}
            for ref, fast in _same_case(rows, "reference", "torch")]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", help="comma-separated (default: every available backend)")
    parser.add_argument("--shapes", help=f"comma-separated from {', '.join(SHAPES)} (default: all)")
    parser.add_argument("--batches", default="2,8", help="comma-separated batch sizes (default: 2,8)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--reps", type=int, help="timed repetitions (default: 20 on CUDA, 3 on CPU)")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/psamask-<device>-<date>.json)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    reps = args.reps or (20 if device.type == "cuda" else 3)
    usable = available_backends(device)
    backends = args.backends.split(",") if args.backends else usable
    for name in backends:
        if name not in usable:
            raise SystemExit(f"backend {name!r} is not available on {device}; available: {usable}")
    shapes = args.shapes.split(",") if args.shapes else list(SHAPES)
    for name in shapes:
        if name not in SHAPES:
            raise SystemExit(f"unknown shape {name!r}; choose from {list(SHAPES)}")
    batches = [int(b) for b in args.batches.split(",")]
    # The reference backend's Python loops take seconds per call on any device: unless
    # asked for explicitly, run it only at the one case where the speed-up target is checked.
    reference_everywhere = args.backends is not None

    load_before = os.getloadavg()
    rows = []
    for shape_name in shapes:
        for batch in batches:
            for backend in backends:
                if backend == "reference" and not reference_everywhere and (shape_name, batch) != REFERENCE_CPU_CASE:
                    continue
                for mode in MODES:
                    row = measure(shape_name, batch, backend, mode, device, dtype, reps)
                    rows.append(row)
                    print(f"{shape_name} batch {batch} {backend:9s} {mode:10s} fwd {row['forward_ms']:9.2f} ms  "
                          f"fwd+bwd {row['forward_backward_ms']:9.2f} ms  copy {row['copy_ms']:8.2f} ms  "
                          f"ratio {row['forward_backward_over_copy']:.2f}", flush=True)

    result = {
        "device": device_description(device),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/psamask.py", *(sys.argv[1:] if argv is None else argv)]),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "rows": rows,
        "torch_over_reference": speedups(rows),
        "kernel_targets": kernel_targets(rows),
        # Other work on the machine slows the memory-bound torch backend most: keep the context.
        "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],
    }
    if device.type == "cuda":
        result["copy_bandwidth_bytes_per_s"] = copy_bandwidth(device)

    table = markdown_table(rows, device)
    notes = [
        f"# PSAMask benchmark on {result['device']}",
        "",
        f"Date: {result['date']}; torch {result['torch']}; dtype {args.dtype}; "
        f"median of {reps} timed runs after a warm-up ('reference': one run).",
        f"Command: `{result['command']}`",
        f"Machine load average (1 min) before / after: {load_before[0]:.1f} / {result['load_average_1min_before_after'][1]:.1f}.",
        "",
        "Peak memory: the most tensor memory alive at once during the call, above what was alive before "
        + ("(torch.cuda peak allocated bytes)." if device.type == "cuda" else
           "(CPU: the allocator running total from torch.profiler allocation events, separate untimed call)."),
        "Copy: the same bytes as forward+backward writes (a tensor of the matrix's size and one of the map's), "
        "by clone() (new memory, like the operator's results) / by copy_ into buffers allocated before; "
        "fwd+bwd / copy: the median over the rounds of the ratio to the clone time; operator and copies "
        "alternate, one call each per round, so they share the machine's load.",
        "Must move: forward reads the K map entries that land on the map and writes all of Y, backward reads "
        "those K entries of dY and writes all of dA; fwd+bwd GB/s is those bytes over the fwd+bwd time, copy GB/s "
        "the clone's bytes read + written over its time in the same rounds.",
        "Index tables: the int64 tables the torch backend cached before issue 21, 8 bytes x (3 or 4) per written "
        "entry / the tables it keeps now.",
        "",
        table,
        "",
    ]
    if device.type == "cuda":
        copy = result["copy_bandwidth_bytes_per_s"]
        notes.append(f"Device copy bandwidth (read + write): {copy / 1e9:.0f} GB/s; forward GB/s counts input read once + output written once.")
        notes.append("")
    for target in result["kernel_targets"]:
        notes.append(
            f"cupy at {target['shape']} batch {target['batch']} {target['mode']}: "
            f"{target['forward_speedup_over_torch']:.2f}x torch's speed forward, "
            f"{target['forward_backward_speedup_over_torch']:.2f}x forward+backward, "
            f"{100 * target['forward_backward_share_of_copy_rate']:.0f}% of the copy's rate over the bytes that must move "
            f"(targets: >1x, >1x, >={100 * BANDWIDTH_TARGET:.0f}%): {'met' if target['met'] else 'MISSED'}"
        )
    for ratio in result["torch_over_reference"]:
        verdicts = {key: "met" if ratio[key] >= SPEEDUP_TARGET else "MISSED" for key in ("forward", "forward_backward")}
        notes.append(
            f"torch / reference at {ratio['shape']} batch {ratio['batch']} {ratio['mode']} "
            f"(target {SPEEDUP_TARGET:.0f}x): forward {ratio['forward']:.0f}x ({verdicts['forward']}), "
            f"forward+backward {ratio['forward_backward']:.0f}x ({verdicts['forward_backward']})"
        )
    write_results(result, "\n".join(notes).rstrip() + "\n", "psamask", device, args.out)


if __name__ == "__main__":
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU-only profiler otherwise logs a GPU error
    main()
