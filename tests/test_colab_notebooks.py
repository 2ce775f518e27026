"""Every chapter runs top to bottom in a simulated Colab runtime, on the CPU, within the
budget its first lines state.

A fresh runtime holds what Colab preinstalls but not psanet-lite; the chapter's own setup
cell installs it (from the wheel `make dist` builds, pip kept offline).
benchmarks/colab_notebooks.py does the simulation; see its docstring.

- Chapters that train nothing run from a fresh runtime here, two at a time, and must end
  within their budget (measured while sharing the cores, so alone they are faster).
- Chapters that train (chapters 6 to 8 and 10) run here with the run cache `make book` filled,
  as on a machine where the book was built, and must load every run from it: that checks
  them in the Colab setup without training the book's models a second time. From an empty
  cache, as on Colab, they would also train those runs: their time here plus the runs'
  training times, which the book build measured on this machine (in CPU time), must stay
  within the budget. (`python benchmarks/colab_notebooks.py <chapters>` measures them from an empty
  cache directly.)

Slow: `make test` runs this module after the book, with `pytest -m colab`.
"""
import json
from pathlib import Path

import pytest
from benchmark_modules import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
colab_notebooks = load_benchmark("colab_notebooks")  # its worker processes find run_chapter by this name
BUDGETS = colab_notebooks.psanet_book.BUDGETS

pytestmark = pytest.mark.colab

TRAINING = [nb for nb in colab_notebooks.chapters() if BUDGETS[nb.stem]["trains"] != "nothing"]
NOT_TRAINING = [nb for nb in colab_notebooks.chapters() if nb not in TRAINING]
BOOK_RUNS = ROOT / "data" / "generated" / "book_runs"  # psanet_lite.book.default_cache_dir() in a checkout


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(wheel, base python): the release's wheel and an interpreter with Colab's packages."""
    folder = tmp_path_factory.mktemp("colab")
    return colab_notebooks.build_wheel(folder), colab_notebooks.make_base_python(folder)


@pytest.fixture(scope="module")
def rows(colab):
    """Every chapter's row: fresh for those that train nothing, from the book's cache for the others."""
    wheel, base = colab
    assert BOOK_RUNS.is_dir(), f"{BOOK_RUNS} is missing: run `make book` first (make test does)"
    fresh = colab_notebooks.run_chapters(NOT_TRAINING, base, wheel, "cpu", jobs=2)
    cached = colab_notebooks.run_chapters(TRAINING, base, wheel, "cpu", jobs=2, runs_cache=BOOK_RUNS)
    return {row["notebook"]: row for row in fresh + cached}


def test_the_base_runtime_lacks_psanet_lite(colab):
    _, base = colab
    result = colab_notebooks.subprocess.run([str(base), "-c", "import psanet_lite"], capture_output=True,
                                            env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert result.returncode != 0, "the simulated Colab runtime must not come with psanet_lite"


def test_the_training_chapters_are_the_ones_that_say_so():
    assert [nb.stem for nb in TRAINING] == [
        "06_training", "07_evaluation_and_ablation", "08_looking_inside", "10_deployment"]


@pytest.mark.parametrize("notebook", NOT_TRAINING, ids=lambda p: p.stem)
def test_chapter_runs_in_a_fresh_colab_runtime_within_its_cpu_budget(rows, notebook):
    row = rows[notebook.name]
    assert row["ok"], f"{notebook.name} failed in a fresh Colab runtime: {row['error']}"
    assert row["device_seen"].endswith("running on cpu"), row["device_seen"]
    assert row["trained"] == [], f"{notebook.name} says it trains nothing but trained {row['trained']}"
    budget = colab_notebooks.budget_seconds(notebook, "cpu")
    assert row["seconds"] <= budget, (
        f"{notebook.name} took {row['seconds']:.0f} s in a fresh runtime, over its stated budget of {budget} s "
        "(book/_ext/psanet_book.py, BUDGETS)")


@pytest.mark.parametrize("notebook", TRAINING, ids=lambda p: p.stem)
def test_training_chapter_runs_in_colab_on_the_books_cached_runs(rows, notebook):
    row = rows[notebook.name]
    assert row["ok"], f"{notebook.name} failed in a Colab runtime holding the book's runs: {row['error']}"
    assert row["device_seen"].endswith("running on cpu"), row["device_seen"]
    assert row["trained"] == [], (
        f"{notebook.name} trained {row['trained']} although `make book` had cached its runs: "
        "the wheel's run keys differ from the checkout's")


@pytest.mark.parametrize("notebook", TRAINING, ids=lambda p: p.stem)
def test_training_chapter_from_an_empty_cache_would_end_within_its_cpu_budget(rows, notebook):
    # From an empty cache (as on Colab) the chapter trains every run it loaded here: its time
    # is this run's plus what training them one after the other takes on this machine (each
    # entry's run.json: its CPU time per torch thread; colab_notebooks.training_seconds).
    row = rows[notebook.name]
    loaded = sorted(set(row["loaded"]))
    assert loaded, f"{notebook.name} loaded no run from the cache: does it still print what it loads?"
    training = colab_notebooks.training_seconds([BOOK_RUNS / entry for entry in loaded])
    budget = colab_notebooks.budget_seconds(notebook, "cpu")
    assert row["seconds"] + training <= budget, (
        f"{notebook.name}: {row['seconds']:.0f} s on the cached runs + {training:.0f} s to train {loaded} "
        f"= {row['seconds'] + training:.0f} s, over its stated budget of {budget} s (book/_ext/psanet_book.py, BUDGETS)")
