"""Every chapter runs top to bottom in a fresh simulated Colab runtime, on the CPU, within
the budget its first lines state.

A fresh runtime holds what Colab preinstalls but not psanet-lite; the chapter's own setup
cell installs it (from the wheel `make dist` builds, pip kept offline) and trains whatever
the empty cache lacks. benchmarks/colab_notebooks.py does the simulation; see its docstring.
Slow (chapters 6 to 8 train models): `make test` runs it after the book, `pytest -m colab`.
"""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab_notebooks", ROOT / "benchmarks" / "colab_notebooks.py")
colab_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_notebooks)

pytestmark = pytest.mark.colab


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(wheel, base python): the release's wheel and an interpreter with Colab's packages."""
    folder = tmp_path_factory.mktemp("colab")
    return colab_notebooks.build_wheel(folder), colab_notebooks.make_base_python(folder)


def test_the_base_runtime_lacks_psanet_lite(colab):
    _, base = colab
    result = colab_notebooks.subprocess.run([str(base), "-c", "import psanet_lite"], capture_output=True,
                                            env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert result.returncode != 0, "the simulated Colab runtime must not come with psanet_lite"


@pytest.mark.parametrize("notebook", colab_notebooks.chapters(), ids=lambda p: p.stem)
def test_chapter_runs_in_a_fresh_colab_runtime_within_its_cpu_budget(colab, notebook):
    wheel, base = colab
    row = colab_notebooks.run_chapter(notebook, base, wheel, device="cpu")
    assert row["ok"], f"{notebook.name} failed in a fresh Colab runtime: {row['error']}"
    assert row["device_seen"].endswith("running on cpu"), row["device_seen"]
    budget = colab_notebooks.budget_seconds(notebook, "cpu")
    assert row["seconds"] <= budget, (
        f"{notebook.name} took {row['seconds']:.0f} s in a fresh runtime, over its stated budget of {budget} s "
        "(book/_ext/psanet_book.py, BUDGETS)")
