"""The book's cached training runs: trained once, then loaded; deterministic; never half-written."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import psanet_lite.book as book_runs
from psanet_lite.data import CONTEXT_LENGTHS
from psanet_lite.book import book_config, context_run, default_cache_dir, marker_run, run_key


@pytest.fixture(autouse=True)
def small_validation_set(monkeypatch):
    monkeypatch.setitem(CONTEXT_LENGTHS, "val", 2)


def _weights(run):
    return run.model.state_dict()


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _entries(cache):
    """The cache's folders, but its lock files."""
    return sorted(p.name for p in cache.iterdir() if p.name != book_runs.LOCKS)


def test_second_call_loads_the_cached_run_without_training(tmp_path, monkeypatch):
    first = context_run("collect", iterations=2, cache_dir=tmp_path, verbose=False)
    assert first.trained and first.seconds > 0
    assert sorted(p.name for p in first.directory.iterdir()) == ["final.pt", "log.jsonl", "run.json", "tensorboard"]
    assert _entries(tmp_path) == [first.directory.name]  # no partial folder left
    assert [p.name for p in (tmp_path / book_runs.LOCKS).iterdir()] == [first.directory.name]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached run was trained again")

    monkeypatch.setattr(book_runs, "train", no_training)
    second = context_run("collect", iterations=2, cache_dir=tmp_path, verbose=False)
    assert not second.trained and second.directory == first.directory
    assert second.seconds == first.seconds
    assert _equal(_weights(first), _weights(second))
    assert second.log == first.log
    assert not second.model.training and second.config.model.psa_type == "collect"
    assert [r["iteration"] for r in second.log if "mIoU" in r] == [1, 2]
    assert second.final_metrics["iteration"] == 2


def test_runs_are_deterministic_and_keyed_by_seed(tmp_path):
    a = context_run("fcn", iterations=1, seed=3, cache_dir=tmp_path / "a", verbose=False)
    b = context_run("fcn", iterations=1, seed=3, cache_dir=tmp_path / "b", verbose=False)
    other = context_run("fcn", iterations=1, seed=4, cache_dir=tmp_path / "a", verbose=False)
    assert b.trained and _equal(_weights(a), _weights(b))
    assert other.trained and other.directory != a.directory
    assert not _equal(_weights(a), _weights(other))
    info = json.loads((other.directory / "run.json").read_text())
    assert info["seed"] == 4 and info["config"] == "psanet_lite_context_fcn"


def test_an_interrupted_run_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    def interrupted(config, work_dir, options):
        (work_dir / "log.jsonl").write_text("{}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(book_runs, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        context_run("bi", iterations=2, cache_dir=tmp_path, verbose=False)
    assert _entries(tmp_path) == []


def test_key_changes_with_everything_that_decides_the_run(monkeypatch):
    base = run_key(book_config("bi", 10), 0)
    assert run_key(book_config("bi", 10), 0) == base
    assert run_key(book_config("bi", 11), 0) != base
    assert run_key(book_config("distribute", 10), 0) != base
    assert run_key(book_config("bi", 10).replace(lr=0.02), 0) != base
    monkeypatch.setitem(CONTEXT_LENGTHS, "val", 3)
    assert run_key(book_config("bi", 10), 0) != base
    monkeypatch.setitem(CONTEXT_LENGTHS, "val", 2)
    assert run_key(book_config("bi", 10), 0) == base


def test_key_changes_when_the_data_or_the_initial_weights_change(monkeypatch):
    base = run_key(book_config("bi", 10), 0)
    monkeypatch.setattr("psanet_lite.data.context.RADIUS", (3, 5))  # the generator draws other objects
    assert run_key(book_config("bi", 10), 0) != base
    monkeypatch.undo()
    monkeypatch.setitem(CONTEXT_LENGTHS, "val", 2)
    monkeypatch.setattr("torch.nn.init.kaiming_normal_", lambda tensor, **kwargs: tensor.data.fill_(0.01))
    assert run_key(book_config("bi", 10), 0) != base


def test_book_config_names_the_ablation_variants():
    assert book_config("bi").model.psa_type == "bi"
    assert book_config("distribute").model.psa_type == "distribute"
    fcn = book_config("fcn", 12)
    assert fcn.model.decode_head == "fcn" and fcn.train.iterations == 12
    assert fcn.data.ratio_range == (1.0, 1.0) and not fcn.data.photometric_distortion
    with pytest.raises(ValueError, match="variant must be one of"):
        book_config("both")
    with pytest.raises(ValueError, match="positive int"):
        book_config("bi", 0)


def test_default_cache_is_under_data_generated_in_a_checkout():
    path = default_cache_dir()
    assert path.parts[-3:] == ("data", "generated", "book_runs")
    assert (path.parents[2] / "pyproject.toml").is_file()


def test_partials_of_killed_builds_are_removed_and_live_ones_kept(tmp_path):
    # A finished process gives a pid that no longer runs (the build that was killed).
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    abandoned = tmp_path / f"{book_runs.PARTIAL_PREFIX}{gone.pid}-entry-x1"
    live = tmp_path / f"{book_runs.PARTIAL_PREFIX}{os.getpid()}-entry-x2"
    for folder in (abandoned, live):
        (folder / "checkpoints").mkdir(parents=True)
    run = context_run("fcn", iterations=1, cache_dir=tmp_path, verbose=False)
    assert not abandoned.exists() and live.exists()
    assert _entries(tmp_path) == sorted([live.name, run.directory.name])


def test_marker_run_starts_from_the_context_run_and_is_cached(tmp_path):
    first = marker_run("fcn", iterations=1, cache_dir=tmp_path, verbose=False, start_iterations=1)
    start = context_run("fcn", iterations=1, cache_dir=tmp_path, verbose=False)
    assert first.trained and not start.trained  # marker_run trained the context run it starts from
    assert first.config.data.dataset == "markers" and first.config.data.flip_prob == 0.0
    assert first.config.model.load_from == str(start.directory / "final.pt")
    again = marker_run("fcn", iterations=1, cache_dir=tmp_path, verbose=False, start_iterations=1)
    assert not again.trained and again.directory == first.directory != start.directory
    # the key hashes the weights load_from holds, not the path that names them
    moved = first.config.replace(load_from=str(tmp_path / "copy.pt"))
    shutil.copy(start.directory / "final.pt", tmp_path / "copy.pt")
    assert run_key(moved, 0) == first.directory.name


def test_committed_result_reads_the_checkout_then_the_release_tag(monkeypatch):
    import psanet_lite
    from psanet_lite import book

    ablation = book.committed_result("ablation_markers.json")
    assert ablation["task"] == "markers" and ablation["seeds"] and len(ablation["summary"]) == 7
    asked = []

    def offline(url, timeout):
        asked.append(url)
        raise OSError("no network")

    monkeypatch.setattr(book.urllib.request, "urlopen", offline)
    assert book.committed_result("no-such-result.json") is None
    assert asked == ["https://raw.githubusercontent.com/psanet-lite/psanet-lite/"
                     f"v{psanet_lite.__version__}/benchmarks/results/no-such-result.json"]


def test_runs_trained_side_by_side_equal_runs_trained_one_at_a_time(tmp_path):
    side = book_runs.train_runs(["fcn", "pool"], jobs=2, cache_dir=tmp_path / "side", verbose=False,
                                iterations=1, marker_iterations=1)
    assert sorted(name.rsplit("-", 1)[0] for name in side) == [
        "psanet_lite_context_fcn", "psanet_lite_context_pool", "psanet_lite_markers_fcn", "psanet_lite_markers_pool"]
    assert book_runs.train_runs(["fcn", "pool"], jobs=2, cache_dir=tmp_path / "side", verbose=False,
                                iterations=1, marker_iterations=1) == {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max((os.cpu_count() or 1) // 2, 1))  # what each of the two processes had
    try:
        for variant in ("fcn", "pool"):
            loaded = marker_run(variant, 1, cache_dir=tmp_path / "side", verbose=False, start_iterations=1)
            alone = marker_run(variant, 1, cache_dir=tmp_path / "alone", verbose=False, start_iterations=1)
            assert not loaded.trained and alone.trained
            assert loaded.directory.name == alone.directory.name
            assert _equal(_weights(loaded), _weights(alone))
            assert loaded.log[-1]["mIoU"] == alone.log[-1]["mIoU"]  # evaluated on the caller's 2 images
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("kwargs, message", [
    (dict(variants=["psp"]), "variants must be keys of"),
    (dict(variants=["fcn"], tasks=("segmentation",)), "tasks a non-empty subset"),
    (dict(variants=["fcn"], jobs=0), "jobs must be a positive int, got 0"),
])
def test_train_runs_rejects_bad_input(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        book_runs.train_runs(cache_dir=tmp_path, verbose=False, **kwargs)


def test_train_runs_starts_marker_runs_from_cached_context_runs(tmp_path):
    first = book_runs.train_runs(["fcn"], tasks=("context",), jobs=2, cache_dir=tmp_path, verbose=False, iterations=1)
    then = book_runs.train_runs(["fcn"], jobs=2, cache_dir=tmp_path, verbose=False, iterations=1, marker_iterations=1)
    assert [name.rsplit("-", 1)[0] for name in first] == ["psanet_lite_context_fcn"]
    assert [name.rsplit("-", 1)[0] for name in then] == ["psanet_lite_markers_fcn"]
    assert not marker_run("fcn", 1, cache_dir=tmp_path, verbose=False, start_iterations=1).trained


def test_a_run_another_process_is_training_is_waited_for_not_trained_again(tmp_path, monkeypatch, capsys):
    # Another process holds the entry's lock and puts the run in place before it lets go
    # (as a training process does); this one must wait, then load the run, not train it.
    config = book_config("fcn", 1)
    entry = tmp_path / run_key(config, 0)
    trained = context_run("fcn", iterations=1, cache_dir=tmp_path / "elsewhere", verbose=False)
    (tmp_path / book_runs.LOCKS).mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(2); os.rename(sys.argv[2], sys.argv[3])",
         str(tmp_path / book_runs.LOCKS / entry.name), str(trained.directory), str(entry)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"

    def train_meanwhile(*args, **kwargs):
        raise AssertionError("trained a run that another process was training")

    monkeypatch.setattr(book_runs, "train", train_meanwhile)
    assert not entry.exists()
    waited = context_run("fcn", iterations=1, cache_dir=tmp_path)
    assert holder.wait() == 0
    assert waited.waited and not waited.trained and waited.directory == entry
    assert _equal(_weights(waited), _weights(trained)) and waited.seconds == trained.seconds
    assert "by another process of this machine, which this one waited for" in capsys.readouterr().out


def test_a_run_whose_trainer_died_is_trained_by_the_process_that_waited(tmp_path):
    # The holder ends without the run (killed): its lock is dropped and this process trains.
    config = book_config("fcn", 1)
    entry = tmp_path / run_key(config, 0)
    (tmp_path / book_runs.LOCKS).mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / book_runs.LOCKS / entry.name)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    holder.kill()
    run = context_run("fcn", iterations=1, cache_dir=tmp_path, verbose=False)
    assert run.trained and not run.waited and run.directory == entry
    info = json.loads((entry / "run.json").read_text())
    assert 0 < info["cpu_seconds"] and info["torch_threads"] == torch.get_num_threads()
