"""Exercise solutions are folded on the site, in JupyterLab and in Colab, code cells
included (book/tools/solutions.py writes that form)."""
import sys
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "tools"))
import solutions  # noqa: E402  (book/tools is not a package)


@pytest.mark.parametrize("path", solutions.chapters(), ids=lambda p: p.name)
def test_every_solution_is_folded(path):
    nb = nbformat.read(path, as_version=4)
    assert not solutions.fold(nb), f"run `python book/tools/solutions.py {path.relative_to(BOOK.parent)}`"


def test_fold_rewrites_a_dropdown_and_hides_its_code():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("```{admonition} Solution 3\n:class: dropdown\n\nIt is $e^0$.\n```"),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    assert solutions.fold(nb)
    text, code = nb.cells
    assert text.source == '<details class="solution"><summary>Solution 3</summary>\n\nIt is $e^0$.\n\n</details>'
    assert code.metadata["tags"] == ["hide-cell"]
    assert code.source.splitlines()[0] == '#@title Solution 3 (code) {display-mode: "form"}'
    assert not solutions.fold(nb)  # folding twice changes nothing
