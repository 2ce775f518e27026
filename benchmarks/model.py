"""Inference throughput and peak memory of whole PSANet models, CPU and CUDA side by side.

    python benchmarks/model.py                         # CPU (+ CUDA when there is a GPU)
    python benchmarks/model.py --devices cpu --cpu-skip-large
    python benchmarks/model.py --devices cuda --cases r50-512x1024

Cases (one forward pass of the model in eval mode under torch.inference_mode):
    r50-512x1024    psanet_r50-d8_512x1024_40k_cityscapes at its training crop
    r50-1024x2048   the same model on a whole Cityscapes image (its test mode)
    lite-128x128    psanet_lite_context, the book's small model, at its crop

CUDA variants, side by side: float32, and bfloat16 autocast with channels_last memory
format; each eager and with torch.compile. Times are CUDA-event medians over --reps
after warm-up calls (the first compiled call's time is reported separately as
`compile_s`). CPU: float32 eager only, wall clock, median of --cpu-reps calls; the
small model's first call is a warm-up, a full-size R50 call (seconds to minutes on a
few cores) counts from the first (1024x2048 can be skipped with --cpu-skip-large).

Peak memory: CUDA, torch.cuda.max_memory_allocated during the timed calls minus what
was allocated before (weights and input excluded). CPU (Linux): each case runs in a
fresh process; the peak resident set size of its first call above the resident size
before it (weights and input excluded).

FLOPs per image come from psanet_lite.models.flops.count_flops (torch's FlopCounterMode,
a multiply-add counts 2). The achieved FLOP rate is set against the device's measured
dense matmul rate: bfloat16 8192^3 matmuls on CUDA (fp32 on the CPU, 2048^3), so
`of peak` reads "what fraction of the device's practical matmul peak the model reaches".

Writes JSON (--out, default benchmarks/results/model-<device>-<date>.json) and the same
table as Markdown beside it, with the device, date and command.
"""

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from timing import device_description, matmul_rate, time_call

from psanet_lite.build import build_model
from psanet_lite.models.flops import count_flops

CASES = {  # name: (preset, input (H, W), batch on CPU, batch on CUDA)
    "r50-512x1024": ("psanet_r50-d8_512x1024_40k_cityscapes", (512, 1024), 1, 1),
    "r50-1024x2048": ("psanet_r50-d8_512x1024_40k_cityscapes", (1024, 2048), 1, 1),
    "lite-128x128": ("psanet_lite_context", (128, 128), 16, 64),
}
LARGE_CASES = ("r50-1024x2048",)
CUDA_VARIANTS = (  # (dtype label, autocast dtype or None, channels_last, compiled)
    ("float32", None, False, False),
    ("float32", None, False, True),
    ("bfloat16", torch.bfloat16, True, False),
    ("bfloat16", torch.bfloat16, True, True),
)


def flops_per_image(case):
    preset, size, _, _ = CASES[case]
    total, _ = count_flops(build_model(preset), size)
    return total


def _status_kib(field):
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def run_cpu_case(case, reps, threads):
    """One CPU measurement in a fresh process: peak memory of the first call, then timing.

    The first call's resident-set growth is its memory: nothing has been allocated and
    freed before it, so no reused memory hides part of the peak. Linux resets the peak
    (VmHWM) on writing 5 to /proc/self/clear_refs. The small model is timed over
    `reps` further calls; the large ones (seconds per call) time that first call too.
    """
    torch.set_num_threads(threads)
    preset, size, batch, _ = CASES[case]
    torch.manual_seed(0)
    model = build_model(preset).eval()
    images = torch.randn(batch, 3, *size)

    def forward():
        with torch.inference_mode():
            model(images)

    def wall_seconds():
        begin = time.perf_counter()
        forward()
        return time.perf_counter() - begin

    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    first = wall_seconds()
    peak_mib = (_status_kib("VmHWM") - before) / 1024
    times = [first] if case.startswith("r50") else []
    times += [wall_seconds() for _ in range(reps - len(times))]
    return {"seconds": statistics.median(times), "peak_mib": peak_mib}


def measure_cpu(case, reps, flops, peak_rate):
    _, size, batch, _ = CASES[case]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(run_cpu_case, case, reps, torch.get_num_threads()).result()
    rate = flops * batch / result["seconds"]
    return {
        "case": case, "device": "cpu", "input": f"{size[0]}x{size[1]}", "batch": batch,
        "dtype": "float32", "channels_last": False, "compiled": False, "reps": reps,
        "images_per_s": batch / result["seconds"], "ms_per_image": 1000 * result["seconds"] / batch,
        "peak_mib": result["peak_mib"], "gflops_per_image": flops / 1e9,
        "achieved_tflops": rate / 1e12, "fraction_of_matmul": rate / peak_rate, "compile_s": None,
    }


def measure_cuda(case, variant, reps, flops, peak_rate, device):
    dtype_label, autocast_dtype, channels_last, compiled = variant
    preset, size, _, batch = CASES[case]
    torch.manual_seed(0)
    model = build_model(preset).eval().to(device)
    images = torch.randn(batch, 3, *size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    runner = torch.compile(model) if compiled else model

    def forward():
        with torch.inference_mode(), torch.autocast("cuda", dtype=autocast_dtype or torch.float32,
                                                    enabled=autocast_dtype is not None):
            runner(images)

    compile_s = None
    if compiled:
        begin = time.perf_counter()
        forward()
        torch.cuda.synchronize(device)
        compile_s = time.perf_counter() - begin
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    seconds = time_call(forward, device, reps=reps, warmup=2)
    peak = torch.cuda.max_memory_allocated(device) - before
    rate = flops * batch / seconds
    del runner, model, images
    torch.cuda.empty_cache()
    torch._dynamo.reset()
    return {
        "case": case, "device": "cuda", "input": f"{size[0]}x{size[1]}", "batch": batch,
        "dtype": dtype_label, "channels_last": channels_last, "compiled": compiled, "reps": reps,
        "images_per_s": batch / seconds, "ms_per_image": 1000 * seconds / batch,
        "peak_mib": peak / 2**20, "gflops_per_image": flops / 1e9,
        "achieved_tflops": rate / 1e12, "fraction_of_matmul": rate / peak_rate, "compile_s": compile_s,
    }


def markdown(result):
    lines = [
        f"# PSANet inference ({result['date']})",
        "",
        f"Command: `{result['command']}`",
        "",
        *(f"- {name}: {text}" for name, text in result["devices"].items()),
        "",
        "| case | device | batch | dtype | channels_last | compiled | images/s | ms/image | peak MiB "
        "| GFLOP/image | TFLOP/s | of matmul peak | compile s |",
        "|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        compile_s = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        lines.append(
            f"| {r['case']} | {r['device']} | {r['batch']} | {r['dtype']} | {'yes' if r['channels_last'] else 'no'} "
            f"| {'yes' if r['compiled'] else 'no'} | {r['images_per_s']:.3g} | {r['ms_per_image']:,.1f} "
            f"| {r['peak_mib']:.0f} | {r['gflops_per_image']:.1f} | {r['achieved_tflops']:.3g} "
            f"| {100 * r['fraction_of_matmul']:.1f}% | {compile_s} |"
        )
    lines += ["", *(f"- {note}" for note in result["notes"]), ""]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda (cuda skipped without a GPU)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--cpu-skip-large", action="store_true", help="skip 1024x2048 on the CPU")
    parser.add_argument("--cpu-reps", type=int, default=1, help="timed calls per CPU case (default 1)")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per CUDA case (default 20)")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/model-<device>-<date>.json)")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {list(CASES)}")
    devices = [d for d in args.devices.split(",") if d]
    notes = []
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        notes.append("no CUDA device here: GPU rows not measured")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None:
        notes.append(f"1-minute load average at the start: {load:.1f} on {os.cpu_count()} logical CPUs "
                     "(other processes share the CPU when it exceeds the thread count)")
    flops = {case: flops_per_image(case) for case in cases}
    rows, descriptions = [], {}
    if "cpu" in devices:
        cpu = torch.device("cpu")
        peak = matmul_rate(cpu, torch.float32, 2048, reps=3)
        descriptions["cpu"] = f"{device_description(cpu)}; measured fp32 matmul {peak / 1e12:.3f} TFLOP/s"
        for case in cases:
            if args.cpu_skip_large and case in LARGE_CASES:
                notes.append(f"{case} skipped on the CPU (--cpu-skip-large)")
                continue
            rows.append(measure_cpu(case, args.cpu_reps, flops[case], peak))
            print(rows[-1], flush=True)
    if "cuda" in devices:
        gpu = torch.device("cuda")
        peak = matmul_rate(gpu, torch.bfloat16, 8192)
        descriptions["cuda"] = f"{torch.cuda.get_device_name(gpu)}; measured bf16 matmul {peak / 1e12:.1f} TFLOP/s"
        for case in cases:
            for variant in CUDA_VARIANTS:
                rows.append(measure_cuda(case, variant, args.reps, flops[case], peak, gpu))
                print(rows[-1], flush=True)
    label = "cuda-" + torch.cuda.get_device_name().replace(" ", "-").lower() if "cuda" in devices else (
        f"cpu-{torch.get_num_threads()}core")
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/model.py", *argv]),
        "torch": torch.__version__,
        "devices": descriptions,
        "rows": rows,
        "notes": notes + [
            "FLOPs: one inference pass (torch FlopCounterMode, multiply-add = 2); TFLOP/s = FLOPs x images/s.",
            "CPU peak MiB: peak RSS growth during the first call in a fresh process; CUDA: peak allocated growth.",
        ],
    }
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parent / "results" / f"model-{label}-{datetime.date.today().isoformat()}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
