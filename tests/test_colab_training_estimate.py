"""The Colab stage's estimate of a training chapter's time from an empty cache counts what
the book build's runs took in CPU time per torch thread, not their wall time (which grows
with what ran beside them)."""
import json

from benchmark_modules import load_benchmark

colab_notebooks = load_benchmark("colab_notebooks")


def _entry(folder, name, **run):
    (folder / name).mkdir()
    (folder / name / "run.json").write_text(json.dumps(run))
    return folder / name


def test_each_run_counts_its_cpu_time_over_its_threads(tmp_path):
    # wall seconds inflated by what ran beside them; CPU seconds are not
    entries = [_entry(tmp_path, "one", seconds=40, cpu_seconds=30.0, torch_threads=1, started=0.0, finished=40.0),
               _entry(tmp_path, "two", seconds=40, cpu_seconds=50.0, torch_threads=2, started=0.0, finished=40.0)]
    assert colab_notebooks.training_seconds(entries) == 55.0


def test_runs_without_their_cpu_time_count_their_seconds(tmp_path):
    entries = [_entry(tmp_path, "old", seconds=7.5, started=0.0, finished=7.5),
               _entry(tmp_path, "new", seconds=9, cpu_seconds=3.0, torch_threads=1)]
    assert colab_notebooks.training_seconds(entries) == 10.5
    assert colab_notebooks.training_seconds([]) == 0.0
