"""The Colab stage's estimate of a training chapter's time from an empty cache counts the
wall time the book build spent training its runs: runs trained side by side count once."""
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab_notebooks", ROOT / "benchmarks" / "colab_notebooks.py")
colab_notebooks = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("colab_notebooks", colab_notebooks)
_spec.loader.exec_module(colab_notebooks)


def _entry(folder, name, **run):
    (folder / name).mkdir()
    (folder / name / "run.json").write_text(json.dumps(run))
    return folder / name


def test_overlapping_runs_count_once_and_gaps_not_at_all(tmp_path):
    entries = [_entry(tmp_path, "a", seconds=10, started=100.0, finished=110.0),
               _entry(tmp_path, "b", seconds=10, started=105.0, finished=115.0),   # beside a
               _entry(tmp_path, "c", seconds=2, started=101.0, finished=103.0),    # inside a
               _entry(tmp_path, "d", seconds=5, started=130.0, finished=135.0)]    # after a gap
    assert colab_notebooks.training_seconds(entries) == 20.0


def test_runs_without_their_interval_count_their_seconds(tmp_path):
    entries = [_entry(tmp_path, "old", seconds=7.5), _entry(tmp_path, "new", seconds=3, started=0.0, finished=3.0)]
    assert colab_notebooks.training_seconds(entries) == 10.5
    assert colab_notebooks.training_seconds([]) == 0.0
