"""Every example in the library's docstrings runs and prints what it says.

The examples are what readers copy first, so they are run like any other test: each
module's doctests with `torch` imported (as every example in the PyTorch world assumes),
in a temporary working folder (examples that write files leave nothing behind).
Examples that need a file the reader has and the tests do not (published weights) are
marked `# doctest: +SKIP` where they stand.
"""

import doctest
import importlib
import pkgutil

import pytest
import torch

import psanet_lite

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(psanet_lite.__path__, prefix="psanet_lite.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(module, name, extraglobs={"torch": torch}):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)


def test_the_library_has_examples():
    # guards the test above against finding nothing (a changed package layout)
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(len(test.examples)
                   for name in MODULES
                   for test in finder.find(importlib.import_module(name), name))
    assert len(MODULES) > 40 and examples > 100, (len(MODULES), examples)
