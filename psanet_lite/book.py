"""The book's training runs: the small model trained once on the context dataset, then cached.

This module serves the book (book/chapters) and benchmarks/ablation_context.py; the
engine knows nothing of it. VARIANTS, the heads of the ablation, are defined here once.

Chapters 6, 7 and 8 all need the same trained networks (the full model, and the
variants of the ablation: one direction, no attention, the related-work heads). Training
them with the real trainer takes minutes on a CPU, so each run is stored under a key
that hashes what decides its result: the config, the seed, the dataset lengths, and
fingerprints of the generated data and of the initial weights (so that a change to
the data generator or to the model's initialisation retires old entries by itself),
and the device type: runs train on CUDA when the runtime has it, else on the CPU, and
a GPU run does not give the CPU run's weights bit for bit, so each device keeps its own.
The first chapter that asks trains it, the others load it, and rebuilding the book
with unchanged settings trains nothing. A chapter that needs several runs trains them
first with train_runs, two side by side on a CPU. A process that asks for a run another
process is training waits for it (a lock per entry) instead of training it again: `make
book` trains BOOK_VARIANTS ahead (book/tools/train_ahead.py) while the chapters execute.

    run = context_run("bi", iterations=600)     # trains, or loads from the cache
    run.model                                   # PSANet in eval mode, trained weights
    run.log                                     # records of log.jsonl (loss, lr, val mIoU)

Cache location: <repository>/data/generated/book_runs when psanet_lite is used from a
checkout (data/generated/ is not tracked), else ~/.cache/psanet-lite/book_runs.
"""
import contextlib
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import torch

import psanet_lite
from psanet_lite.build import build_model
from psanet_lite.configs import Config, get_config
from psanet_lite.data import CONTEXT_LENGTHS, build_dataset
from psanet_lite.models import NonLocalHead
from psanet_lite.engine.distributed import pick_device
from psanet_lite.engine.run_log import read_log
from psanet_lite.engine.trainer import TrainOptions, train

# The ablation of the paper, in miniature, with the related work it discusses: no context
# (FCN), image-level context (global pooling), pyramid pooling (PSPNet), non-local
# self-attention, PSA in one direction and in both. Each replaces the PSA head of the
# book's model with a head of about the same parameter count (within 10% for the whole
# model): the context heads are sized by build_model, the one-direction PSA heads are
# made wider (80 channels instead of 64) to make up for their missing branch.
# key: (label, config overrides)
VARIANTS = {
    "fcn": ("FCN (no context)", {"decode_head": "fcn"}),
    "pool": ("global pooling (ParseNet)", {"decode_head": "pool"}),
    "ppm": ("pyramid pooling (PSPNet)", {"decode_head": "ppm"}),
    "nonlocal": ("non-local (embedded Gaussian)", {"decode_head": "nonlocal"}),
    "collect": ("PSA, collect", {"psa_type": "collect", "channels": 80}),
    "distribute": ("PSA, distribute", {"psa_type": "distribute", "channels": 80}),
    "bi": ("PSA, bi-direction (PSANet)", {"psa_type": "bi"}),
}
# The book's two tasks (data/README.md): on 'context' one cue colours every object of an
# image; on 'markers' each object's shape selects the offset of the marker that decides
# it. Marker runs start from the context run of the same head and seed (model.load_from):
# trained from scratch, the attention branches get too little gradient to learn where to
# look within the budget. key: preset
TASKS = {"context": "psanet_lite_context", "markers": "psanet_lite_markers"}
BOOK_ITERATIONS = 600  # what chapters 6-8 train for (batch 8: 4800 images, a few minutes on 2 cores)
# A marker run's steps after its context run: at 600 the collect masks had found the
# squares' markers but not yet the discs' (chapter 8 measures them).
MARKER_ITERATIONS = 1000
EVALUATIONS = 6  # validation points per run, for the mIoU curve
RUN_FILE = "run.json"  # written last: its presence marks a complete run
PARTIAL_PREFIX = ".partial-"  # + '<pid>-<entry>-<random>': a run being trained
LOCKS = ".locks"  # folder of the cache holding a lock file per entry: held while it trains
# Bump when the way runs are made changes without the config changing, to retire old entries.
RECIPE = 1
# The heads the chapters train, each on both tasks: 'bi' (chapters 6, 8 and 10), 'fcn' and
# 'pool' (chapter 7); book/tools/train_ahead.py trains them while the book builds. Listed in
# the order they are needed.
BOOK_VARIANTS = ("bi", "fcn", "pool")


@dataclass
class ContextRun:
    """One trained model of the book and where it came from.

    model: PSANet in eval mode with the trained weights (on the CPU).
    config: the Config it was trained with.
    log: the records of its log.jsonl (training records have 'loss' and 'lr',
        validation records 'mIoU', 'IoU', 'aAcc', ...), in order.
    directory: the cache entry (final.pt, log.jsonl, run.json, tensorboard/).
    trained: True when this call trained it, False when it came from the cache.
    seconds: wall-clock training time of the run that produced it.
    waited: True when another process was training it and this call waited for it.
    """

    model: object
    config: Config
    log: list
    directory: Path
    trained: bool
    seconds: float
    waited: bool = False

    @property
    def final_metrics(self) -> dict:
        """The last validation record of the log (mIoU, IoU, aAcc ... as fractions)."""
        records = [r for r in self.log if "mIoU" in r]
        if not records:
            raise ValueError(f"the run in {self.directory} has no validation record")
        return records[-1]


def book_config(variant: str = "bi", iterations: int = BOOK_ITERATIONS, task: str = "context") -> Config:
    """The config of the book's run `variant` (a key of VARIANTS) on `task` (a key of TASKS).

    The task's preset ('psanet_lite_context' or 'psanet_lite_markers', whose learning rate
    and augmentation depart from mmsegmentation's for reasons chapter 6 shows) with the
    variant's head, `iterations` optimizer steps, one training checkpoint at the end and
    EVALUATIONS validation passes on 'context' (chapters 6 and 7 plot the curves), one at
    the end on 'markers' (only the final scores are shown).

    Example:
        >>> book_config("collect", 100).model.psa_type
        'collect'
        >>> book_config("bi", 100, task="markers").data.dataset
        'markers'
        >>> book_config("bi", 100, task="markers").train.eval_interval  # validated once, at the end
        100
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    return get_config(TASKS[task]).replace(
        name=f"{TASKS[task]}_{variant}",
        iterations=iterations,
        checkpoint_interval=iterations,
        eval_interval=max(iterations // EVALUATIONS, 1) if task == "context" else iterations,
        **VARIANTS[variant][1],
    )


def default_cache_dir() -> Path:
    """<repository>/data/generated/book_runs in a checkout, else ~/.cache/psanet-lite/book_runs."""
    root = Path(psanet_lite.__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root / "data" / "generated" / "book_runs"
    return Path.home() / ".cache" / "psanet-lite" / "book_runs"


def committed_result(name: str, timeout: float = 10.0):
    """The parsed JSON of benchmarks/results/<name>, as committed for this release, or None.

    Read from the checkout psanet_lite runs from (`make book`, `pip install -e .`); where
    psanet-lite is installed from a wheel (Colab), downloaded from the repository's
    release tag v<version> (the Repository URL of the package's metadata), and None when
    that fails (no network).

    Example:
        >>> committed_result("ablation_markers.json")["task"]
        'markers'
    """
    root = Path(psanet_lite.__file__).resolve().parents[1]
    local = root / "benchmarks" / "results" / name
    if (root / "pyproject.toml").is_file() and local.is_file():
        return json.loads(local.read_text())
    urls = importlib.metadata.metadata("psanet-lite").get_all("Project-URL") or []
    repository = next((u.split(",", 1)[1].strip() for u in urls if u.startswith("Repository")), None)
    if repository is None or not repository.startswith("https://github.com/"):
        return None
    raw = repository.replace("https://github.com/", "https://raw.githubusercontent.com/", 1)
    try:
        with urllib.request.urlopen(f"{raw}/v{psanet_lite.__version__}/benchmarks/results/{name}",
                                    timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def run_key(config: Config, seed: int, device_type: str = "cpu") -> str:
    """The cache key of a run: a hash of what decides its weights and log (config, seed,
    dataset lengths, fingerprints of the data and of the initial weights, and the
    device type it trains on: 'cpu' or 'cuda').

    Example:
        >>> run_key(book_config("bi", 10), 0) == run_key(book_config("bi", 10), 0)
        True
        >>> run_key(book_config("bi", 10), 0) == run_key(book_config("bi", 10), 1)
        False
        >>> run_key(book_config("bi", 10), 0) == run_key(book_config("bi", 10), 0, "cuda")
        False
    """
    # load_from names a file of this machine's cache; the fingerprint covers the weights it holds
    recipe = {"config": config.replace(load_from=None).to_dict(), "seed": seed, "lengths": dict(CONTEXT_LENGTHS),
              "recipe": RECIPE, "fingerprint": _fingerprint(config, seed), "device": device_type}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{config.name}-{digest[:16]}"


def _fingerprint(config: Config, seed: int) -> str:
    """Hash of the first training and validation pairs and of the weights the trainer
    starts from (it seeds torch with `seed`, then builds the model)."""
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for tensor in build_dataset(config.data, split).read(0):
            digest.update(tensor.numpy().tobytes())
    with torch.random.fork_rng(devices=[]):  # leave the caller's generator alone
        torch.manual_seed(seed)
        weights = build_model(config).state_dict()
    for name, tensor in weights.items():
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def context_run(variant: str = "bi", iterations: int = BOOK_ITERATIONS, seed: int = 0, cache_dir=None,
                verbose: bool = True) -> ContextRun:
    """The book's model `variant` trained for `iterations` steps with `seed`: from the
    cache when it holds that run, else trained now (with psanet_lite.engine.train, on CUDA
    when the runtime has it, else on the CPU) and stored.

    A run is trained in a temporary folder next to its cache entry and renamed into
    place when complete, so an interrupted build leaves no half-written entry (a build
    killed outright leaves its temporary folder, which the next training run removes),
    and two builds racing for the same run both end up with one complete copy. Training is
    deterministic on the CPU: the same arguments give the same weights.

    Args:
        variant: a key of VARIANTS ('bi', 'collect', 'distribute', 'fcn', 'pool', 'ppm', 'nonlocal').
        iterations: optimizer steps (batch 8).
        seed: seeds initialisation, data order and augmentation.
        cache_dir: folder of the cache (default: default_cache_dir()).
        verbose: print one line saying whether the run was trained or loaded.

    Returns:
        ContextRun with the model in eval mode on the CPU (wherever it trained).

    Example:
        >>> run = context_run("bi", iterations=600)  # doctest: +SKIP
        >>> run.final_metrics["mIoU"]  # doctest: +SKIP
        0.9
    """
    return _cached_run(book_config(variant, iterations), seed, cache_dir, verbose)


def marker_run(variant: str = "bi", iterations: int = MARKER_ITERATIONS, seed: int = 0, cache_dir=None,
               verbose: bool = True, start_iterations: int = BOOK_ITERATIONS) -> ContextRun:
    """The book's model `variant` on the marker task: started from context_run(variant,
    start_iterations, seed) (trained first if the cache lacks it) and trained `iterations`
    more steps on the marker dataset, with the same cache as context_run.

    Example:
        >>> run = marker_run("bi")  # doctest: +SKIP
        >>> run.config.model.load_from.endswith("final.pt")  # doctest: +SKIP
        True
    """
    start = context_run(variant, start_iterations, seed, cache_dir, verbose)
    return _cached_run(_marker_config(variant, iterations, start.directory), seed, cache_dir, verbose)


def _marker_config(variant: str, iterations: int, start: Path) -> Config:
    """The marker run's config, started from the weights of the context run in `start`."""
    return book_config(variant, iterations, task="markers").replace(load_from=str(start / "final.pt"))


def train_runs(variants, tasks=("context", "markers"), jobs: int | None = None, seed: int = 0, cache_dir=None,
               verbose: bool = True, iterations: int = BOOK_ITERATIONS,
               marker_iterations: int = MARKER_ITERATIONS) -> dict:
    """Train the runs of `variants` on `tasks` that the cache lacks, `jobs` at a time; then
    context_run and marker_run load them.

    context_run trains one run with every thread of the machine, but the book's model is
    too small to keep two CPU cores busy through one training: two trainings side by side,
    one thread each, finish sooner (benchmarks/book_runs.py measures by how much). So a
    chapter that needs several runs asks for them here first. A marker run starts when its
    context run is done. On a GPU, or with jobs=1, the runs train one after the other in
    this process. The processes are started with 'spawn', which imports the caller's main
    module again: in a script, call train_runs under `if __name__ == "__main__":`.

    Args:
        variants: keys of VARIANTS.
        tasks: 'context', 'markers' or both; a marker run needs its context run, trained too.
        jobs: trainings at a time (default: 2 on a CPU with at least 2 cores, else 1);
            each gets os.cpu_count() // jobs torch threads and loads its own data.
        seed, cache_dir, verbose: as context_run's.
        iterations, marker_iterations: the lengths of the context and marker runs.

    Returns:
        {entry name: training seconds} of the runs this call trained ({} when all were cached,
        or trained by another process that this call waited for).

    Example:
        >>> train_runs(["fcn", "pool"])  # doctest: +SKIP
        psanet_lite_context_fcn: trained 600 iterations on cpu in 301 s (2 at a time, 1 torch thread each)
        ...
    """
    unknown = [v for v in variants if v not in VARIANTS]
    wrong = [t for t in tasks if t not in TASKS]
    if unknown or wrong or not tasks:
        raise ValueError(f"variants must be keys of {tuple(VARIANTS)} and tasks a non-empty subset of "
                         f"{tuple(TASKS)}, got {list(variants)} and {list(tasks)}")
    device = pick_device().type
    cores = os.cpu_count() or 1
    jobs = jobs if jobs is not None else (2 if device == "cpu" and cores >= 2 else 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    cache = _cache(cache_dir)
    if jobs > 1 and device == "cpu":
        lengths = {"context": iterations, "markers": marker_iterations}
        return _train_side_by_side(variants, tasks, lengths, jobs, max(cores // jobs, 1), seed, cache, verbose)
    made = {}  # entry name: training seconds, of the runs this call trained
    for variant in variants:
        runs = [context_run(variant, iterations, seed, cache, verbose)]
        if "markers" in tasks:
            config = _marker_config(variant, marker_iterations, runs[0].directory)
            runs.append(_cached_run(config, seed, cache, verbose))
        made.update({run.directory.name: run.seconds for run in runs if run.trained})
    return made


def _train_side_by_side(variants, tasks, lengths: dict, jobs: int, threads: int, seed: int, cache: Path,
                        verbose: bool) -> dict:
    """train_runs on the CPU with `jobs` processes of `threads` torch threads each; lengths:
    {task: iterations}."""
    seconds = {}  # entry name: training seconds
    contexts = {variant: book_config(variant, lengths["context"]) for variant in variants}
    entries = {variant: cache / run_key(config, seed, "cpu") for variant, config in contexts.items()}
    context = {variant: entry for variant, entry in entries.items() if (entry / RUN_FILE).is_file()}  # done
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        running = {}  # future: (variant, task, config, entry)

        def submit(variant, task, config, entry):
            if not (entry / RUN_FILE).is_file():
                running[pool.submit(_train_job, entry, config, seed, dict(CONTEXT_LENGTHS))] = (
                    variant, task, config, entry)

        def start_markers(variant):
            if "markers" in tasks:
                config = _marker_config(variant, lengths["markers"], context[variant])
                submit(variant, "markers", config, cache / run_key(config, seed, "cpu"))

        # The marker runs that can start go first: the longest runs, with nothing to wait for.
        for variant in context:
            start_markers(variant)
        for variant in variants:
            if variant not in context:
                submit(variant, "context", contexts[variant], entries[variant])
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                variant, task, config, entry = running.pop(future)
                took = future.result()  # a failed training raises here; None: another process trained it
                if took is not None:
                    seconds[entry.name] = took
                if verbose:
                    print(_waited_line(config, entry) if took is None else
                          f"{config.name}: trained {config.train.iterations} iterations on cpu in {took:.0f} s "
                          f"({jobs} at a time, {threads} torch thread{'s' if threads > 1 else ''} each)")
                if task == "context":
                    context[variant] = entry
                    start_markers(variant)
    return seconds


def _train_job(entry: Path, config: Config, seed: int, lengths: dict) -> float | None:
    """_train_into in a process of train_runs' pool, with the caller's dataset lengths
    (the run key hashes them). Its progress lines are dropped: two runs would interleave
    theirs, and train_runs prints one line per run when it ends."""
    CONTEXT_LENGTHS.update(lengths)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        return _train_into(entry, config, seed, "cpu", False)


def _cache(cache_dir) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def _cached_run(config: Config, seed: int, cache_dir, verbose: bool) -> ContextRun:
    cache = _cache(cache_dir)
    device = pick_device().type
    entry = cache / run_key(config, seed, device)
    trained = waited = False
    if not (entry / RUN_FILE).is_file():
        trained = _train_into(entry, config, seed, device, verbose) is not None
        waited = not trained
    info = json.loads((entry / RUN_FILE).read_text())
    if verbose and waited:
        print(_waited_line(config, entry))
    elif verbose and not trained:
        # The entry's name only: the page must not show the build machine's folders, nor a
        # training time measured on whichever machine filled the cache.
        print(f"{config.name}: {config.train.iterations} iterations, loaded from the book's run cache ({entry.name})")
    model = build_model(checkpoint=str(entry / "final.pt")).eval()  # safe_torch_load maps to the CPU
    return ContextRun(model, config, read_log(entry), entry, trained, info["seconds"], waited)


def _waited_line(config: Config, entry: Path) -> str:
    """What a caller prints of a run that another process trained while it waited: the same
    machine, just now, so its time is this build's."""
    info = json.loads((entry / RUN_FILE).read_text())
    threads = info.get("torch_threads", 0)
    return (f"{config.name}: trained {config.train.iterations} iterations on {info['device']} in "
            f"{info['seconds']:.0f} s by another process of this machine, which this one waited for"
            + (f" ({threads} torch thread{'s' if threads > 1 else ''})" if threads else ""))


@contextlib.contextmanager
def _claim(entry: Path):
    """Hold the lock of cache entry `entry` (cache/.locks/<entry name>), waiting while another
    process holds it: the one process that trains a run holds its lock, and the others wait
    for the run instead of training it too. The system drops a lock whose process dies.
    Where there is no fcntl (Windows), nothing is locked: racing processes both train and
    the first rename wins."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    locks = entry.parent / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / entry.name, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_abandoned_partials(cache: Path) -> list[Path]:
    """Delete the partial folders in `cache` whose training process no longer runs.

    A build killed outright (SIGKILL, a timeout's SIGTERM) cannot clean up after
    itself, so the next run does: a partial folder names the process that trains into
    it, and the folders of processes that are gone are removed. Those of live
    processes (another build racing for the same run) are left alone. Returns the
    removed folders.
    """
    removed = []
    for folder in cache.glob(PARTIAL_PREFIX + "*"):
        pid = folder.name[len(PARTIAL_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _train_into(entry: Path, config: Config, seed: int, device: str, verbose: bool) -> float | None:
    """Train `config` into the cache entry `entry` (atomically); its training seconds, or None
    when another process was training it and this one waited until it was done."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _claim(entry):
        if (entry / RUN_FILE).is_file():
            return None
        return _train_claimed(entry, config, seed, device, verbose)


def _train_claimed(entry: Path, config: Config, seed: int, device: str, verbose: bool) -> float:
    """_train_into once the entry's lock is held."""
    for folder in remove_abandoned_partials(entry.parent):
        if verbose:
            print(f"removed {folder.name}, left by an interrupted build")
    prefix = f"{PARTIAL_PREFIX}{os.getpid()}-{entry.name}-"
    partial = Path(tempfile.mkdtemp(prefix=prefix, dir=entry.parent))
    try:
        # The samples are drawn in the training process: a generated image costs about 2 ms,
        # and a loading process beside it would only compete for the cores (the sampler makes
        # the batches the same either way).
        options = TrainOptions(device=device, seed=seed, workers=0, log_interval=10,
                               keep_checkpoints=1, progress=False)
        started, start, cpu = time.time(), time.perf_counter(), time.process_time()
        train(config, partial, options)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        # The training state (optimizer, generators) only serves to resume; final.pt has the weights.
        shutil.rmtree(partial / "checkpoints")
        # started/finished (seconds since the epoch): runs trained side by side overlap.
        # cpu_seconds: this process's CPU time, which does not grow with what else the machine
        # runs (the wall time does); over torch_threads, about what the run takes alone.
        info = {"config": config.name, "seed": seed, "seconds": seconds, "cpu_seconds": cpu, "started": started,
                "finished": started + seconds, "device": device, "torch_threads": torch.get_num_threads(),
                "psanet_lite_version": psanet_lite.__version__}
        (partial / RUN_FILE).write_text(json.dumps(info, indent=1) + "\n")
        try:
            os.rename(partial, entry)  # atomic; fails if another build finished the same run first
        except OSError:
            if not (entry / RUN_FILE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if verbose:
        print(f"{config.name}: trained {config.train.iterations} iterations on {device} in {seconds:.0f} s, "
              f"cached as {entry.name}")
    return seconds


def attention_maps(model, images) -> dict:
    """The attention of a trained model's head on normalised `images` [N, 3, H, W]:
    {'collect': ..., 'distribute': ...} for PSA heads (the directions they have),
    {'nonlocal': ...} for the non-local head, {} for heads without attention. Each map is
    [N, h*w, h, w]: entry [n, t, y, x] is the share of position t in the output at (y, x).

    Example:
        >>> model = build_model("psanet_lite_context", decode_head="nonlocal").eval()
        >>> attention_maps(model, torch.randn(1, 3, 64, 64))["nonlocal"].shape
        torch.Size([1, 64, 8, 8])
    """
    head = model.decode_head
    if isinstance(head, NonLocalHead):
        with torch.no_grad():
            features = model.eval().backbone(images)[1]  # [N, C4, h, w]
            weights = head.attention(features)  # [N, HW(s), HW(t)]
        return {"nonlocal": weights.transpose(1, 2).unflatten(2, features.shape[-2:])}
    if not hasattr(head, "attention_maps"):
        return {}
    maps = model.attention_maps(images)
    return {direction: maps[direction] for direction in head.directions}
