"""Run the book's chapters as Colab runs them, and time each one.

Each chapter gets a fresh runtime: a new interpreter environment that sees only what Colab
preinstalls (the "base" Python: torch, torchvision, numpy, matplotlib, pillow, tqdm,
tensorboard, IPython and its kernel, pip) but not psanet-lite, an empty home folder (so no
cached training run and no installed package is left by another chapter), and a kernel that
presents itself as Colab's does: `google.colab` is imported at start-up and Colab's
environment variables are set. The chapter's setup cell then installs psanet-lite with
%pip, pointed at a local wheel (PSANET_LITE_INSTALL, pip offline) instead of the git tag.

    python benchmarks/colab_notebooks.py                          # every chapter, on the CPU
    python benchmarks/colab_notebooks.py --device cuda            # as on a Colab GPU runtime
    python benchmarks/colab_notebooks.py book/chapters/02_why_context.ipynb --wheel dist/psanet_lite-0.1.0-py3-none-any.whl

Without --base-python, the base environment is made with uv (torch and torchvision pinned
by pyproject's [tool.uv] constraints); without --wheel, the wheel is built with `uv build`.
On a machine with no network, give both (benchmarks/colab_gpu.sh does). Writes
benchmarks/results/colab-<device>-<date>.{json,md}: per chapter, the seconds it took (the
install included), its budget from book/_ext/psanet_book.py, and the error if it failed.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import psanet_book  # noqa: E402  (needs the path above)

# What Colab has installed before a notebook runs, of what the chapters import.
COLAB_PREINSTALLED = ["torch", "torchvision", "numpy", "matplotlib", "pillow", "tqdm", "tensorboard",
                      "ipython", "ipykernel"]
# The export extra's packages, which the deployment chapter's setup cell installs on Colab
# from the package index: here pip stays offline, so the base environment holds them.
OFFLINE_EXTRAS = ["onnx", "onnxruntime", "onnxscript"]
UV = [sys.executable, "-m", "uv"]  # the uv of the interpreter running this script (the dev extra)
# What psanet_lite.book prints for a run it loads from its cache: the entry's name.
LOADED = re.compile(r"loaded from the book's run cache \(([^)\s]+)\)")
COLAB_SHIM = '''"""Stands in for Colab's own package: its presence is how notebooks tell they run on Colab."""
'''


def chapters():
    """The chapters of the book, in order."""
    return sorted((ROOT / "book" / "chapters").glob("*.ipynb"))


def build_wheel(out_dir):
    """The wheel `make dist` builds, written to out_dir."""
    subprocess.run([*UV, "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(ROOT)], check=True)
    (wheel,) = Path(out_dir).glob("psanet_lite-*.whl")
    return wheel


def make_base_python(folder):
    """A virtual environment holding COLAB_PREINSTALLED, OFFLINE_EXTRAS and pip, made with uv; its python."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["constraint-dependencies"]
    constraints = Path(folder) / "constraints.txt"
    # The lock's versions of everything (the export packages included: a newer onnxscript
    # writes a larger file than the one the book was built and checked with), then the pins.
    locked = subprocess.run([*UV, "export", "--frozen", "--all-extras", "--no-hashes", "--no-emit-project",
                             "--no-header", "--project", str(ROOT)], check=True, capture_output=True, text=True).stdout
    constraints.write_text(locked + "\n".join(pins) + "\n")
    env = Path(folder) / "colab-base"
    subprocess.run([*UV, "venv", "--quiet", "--seed", "--python", sys.executable, str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run([*UV, "pip", "install", "--quiet", "--python", str(python), "-c", str(constraints),
                    *COLAB_PREINSTALLED, *OFFLINE_EXTRAS], check=True)
    return python


def fresh_runtime(base_python, folder):
    """A new environment over base_python's packages, with the Colab shim; its python.

    Packages installed in the runtime (psanet-lite, by the setup cell) land in its own
    site-packages; the base environment's come after them on sys.path, as Colab's
    preinstalled packages do.
    """
    env = Path(folder) / "runtime"
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    base_site = subprocess.run([str(base_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    (site / "colab_base.pth").write_text(base_site + "\n")
    (site / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: google.protobuf stays importable
    (site / "google" / "colab" / "__init__.py").write_text(COLAB_SHIM)
    return python


def runtime_environment(home, wheel, device):
    """The environment variables of the kernel: a fresh home, Colab's markers, pip offline."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "OMP_NUM_THREADS", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "HOME": str(home),
        "COLAB_RELEASE_TAG": "psanet-lite-simulation",
        "COLAB_BACKEND_VERSION": "psanet-lite-simulation",
        psanet_book.INSTALL_OVERRIDE: str(wheel),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(Path(wheel).parent),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    })
    if device == "cuda":
        env["COLAB_GPU"] = "1"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
    startup = Path(home) / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernel does at start-up\n")
    return env


def run_chapter(notebook, base_python, wheel, device="cpu", cell_timeout=1800, runs_cache=None):
    """Execute one notebook in a fresh simulated Colab runtime.

    With runs_cache (a folder of the book's cached training runs, such as the one `make
    book` fills), the runtime's cache starts as a copy of it, as on a machine where the
    book was built; without, it starts empty, as on Colab.

    Returns {"notebook", "seconds", "ok", "error", "device_seen", "trained", "loaded"}:
    seconds from the kernel's start to the end of the last cell, the setup cell's install
    included; trained, the cache entries the chapter had to train; loaded, those it
    loaded from the cache (as it printed them).
    """
    with tempfile.TemporaryDirectory(prefix="colab-") as folder:
        python = fresh_runtime(base_python, folder)
        home, content = Path(folder) / "home", Path(folder) / "content"
        home.mkdir()
        content.mkdir()
        env = runtime_environment(home, wheel, device)
        cache = home / ".cache" / "psanet-lite" / "book_runs"  # psanet_lite.book.default_cache_dir() of a wheel install
        if runs_cache is not None:
            shutil.copytree(runs_cache, cache, ignore=shutil.ignore_patterns(".partial-*"))
        before = set(os.listdir(cache)) if cache.is_dir() else set()
        kernels = Path(folder) / "jupyter" / "kernels" / "colab-sim"
        kernels.mkdir(parents=True)
        (kernels / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (simulated Colab)", "language": "python"}))
        nb = nbformat.read(notebook, as_version=4)
        client = NotebookClient(nb, kernel_name="colab-sim", timeout=cell_timeout,
                                resources={"metadata": {"path": str(content)}})
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = str(Path(folder) / "jupyter")  # where the kernel spec is found
        start = time.perf_counter()
        error = None
        try:
            client.execute(env=env, cwd=str(content))
        except Exception as exc:  # a failing cell: keep its message, time the run all the same
            error = f"{type(exc).__name__}: {str(exc)[-2000:]}"
        finally:
            if saved is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = saved
        seconds = time.perf_counter() - start
        # the new entries ('.locks' and partial folders are not runs)
        trained = sorted(n for n in set(os.listdir(cache)) - before if not n.startswith(".")) if cache.is_dir() else []
    setup = next(c for c in nb.cells if c.get("id") == psanet_book.SETUP_CELL_ID)
    seen = "".join(o.get("text", "") for o in setup.get("outputs", []) if o.get("name") == "stdout").strip()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                      if o.get("name") == "stdout")
    return {"notebook": Path(notebook).name, "seconds": round(seconds, 1), "ok": error is None,
            "error": error, "device_seen": seen, "trained": trained, "loaded": LOADED.findall(printed)}


def run_chapters(notebooks, base_python, wheel, device="cpu", jobs=1, runs_cache=None):
    """run_chapter for each notebook, `jobs` at a time (each in a process of its own, with
    its kernel on one thread when jobs > 1, so that the kernels together use about `jobs`
    cores); the rows in the notebooks' order."""
    if jobs == 1:
        return [run_chapter(nb, base_python, wheel, device, runs_cache=runs_cache) for nb in notebooks]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.starmap(_run_chapter_on_one_thread,
                            [(nb, base_python, wheel, device, runs_cache) for nb in notebooks], chunksize=1)


def _run_chapter_on_one_thread(notebook, base_python, wheel, device, runs_cache):
    os.environ["OMP_NUM_THREADS"] = "1"  # this worker's own environment: its kernels inherit it
    return run_chapter(notebook, base_python, wheel, device, runs_cache=runs_cache)


def training_seconds(entries) -> float:
    """Seconds that training the run-cache `entries` (folders with a run.json) one after the
    other would take on this machine with nothing else running: the sum of each run's CPU
    time over its torch threads. The build's wall times would not do: the build trains its
    runs beside the chapters (book/tools/train_ahead.py), which slows them by as much as the
    chapters take. An upper bound for Colab's two cores, where a chapter trains with two
    threads, or two runs side by side. An entry without its CPU time (an older cache)
    counts its wall seconds.
    """
    total = 0.0
    for entry in entries:
        run = json.loads((Path(entry) / "run.json").read_text())
        total += run["cpu_seconds"] / run["torch_threads"] if "cpu_seconds" in run else run["seconds"]
    return total


def budget_seconds(notebook, device):
    """The chapter's budget (psanet_book.BUDGETS) on the CPU or a T4-class GPU; None if not stated."""
    budget = psanet_book.BUDGETS[Path(notebook).stem]
    minutes = budget["cpu_minutes"] if device == "cpu" else budget["t4_minutes"]
    return None if minutes is None else 60 * minutes


def device_name(device):
    """'cpu-<n>core' or the GPU's name, for the results' file name and header."""
    if device == "cpu":
        return f"cpu-{os.cpu_count()}core"
    import torch

    return torch.cuda.get_device_name(0).lower().replace(" ", "-")


def write_results(rows, device, out_dir, command, tag=None):
    """benchmarks/results/colab-<device>-<date>[-<tag>].{json,md}; returns the JSON path."""
    date = datetime.date.today().isoformat()
    name = device_name(device)
    meta = {"device": name, "date": date, "command": command, "python": platform.python_version(),
            "machine": platform.machine()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"colab-{name}-{date}{'-' + tag if tag else ''}.json"
    path.write_text(json.dumps({**meta, "chapters": rows}, indent=2) + "\n")
    lines = [f"# Chapters run as in a fresh Colab runtime ({name}, {date})", "", f"`{command}`", "",
             "| chapter | seconds | budget (s) | runs trained | result |", "| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        result = "ok" if row["ok"] else "FAILED: " + row["error"].splitlines()[0][:200]
        lines.append(f"| {row['notebook']} | {row['seconds']:.0f} | {row['budget_s'] or 'not stated'} "
                     f"| {len(row['trained'])} | {result} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--wheel", type=Path, help="psanet-lite wheel (default: built with uv)")
    parser.add_argument("--base-python", type=Path, help="interpreter with Colab's packages (default: made with uv)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chapters run at once (times measured with more than one share the cores)")
    parser.add_argument("--runs-cache", type=Path,
                        help="start each runtime's run cache as a copy of this folder (default: empty, as on Colab)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--tag", help="appended to the results' file name (runs of other chapters the same day)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="colab-base-") as folder:
        wheel = args.wheel.resolve() if args.wheel else build_wheel(folder)
        base = args.base_python or make_base_python(folder)
        notebooks = args.notebooks or chapters()
        rows = run_chapters(notebooks, base, wheel, args.device, args.jobs, args.runs_cache)
        for notebook, row in zip(notebooks, rows):
            row["budget_s"] = budget_seconds(notebook, args.device)
            print(f"{row['notebook']}: {'ok' if row['ok'] else 'FAILED'} in {row['seconds']:.0f} s "
                  f"(budget {row['budget_s']} s), {row['device_seen']}, trained {len(row['trained'])} runs", flush=True)
    command = "python benchmarks/colab_notebooks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(write_results(rows, args.device, args.out_dir, command.strip(), args.tag))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
