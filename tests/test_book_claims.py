"""Every claim the book makes about a computed result stands next to an assertion
(book/tools/claims.py says what counts as a claim)."""
import sys
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "tools"))
import claims  # noqa: E402  (book/tools is not a package)


def _notebook(tmp_path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
                for kind, text in cells]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("path", claims.notebooks(), ids=lambda p: p.name)
def test_no_claim_without_an_assertion(path):
    problems = claims.unbacked_claims(path)
    assert not problems, "\n".join(f"cell {index}: {text}" for index, text in problems)


def test_a_printed_equality_needs_an_assert(tmp_path):
    path = _notebook(tmp_path, ("code", "print('by hand == library:', torch.equal(a, b))"))
    assert [index for index, _ in claims.unbacked_claims(path)] == [0]
    path = _notebook(tmp_path, ("code", "same = torch.equal(a, b)\nassert same\nprint('by hand == library:', same)"))
    assert claims.unbacked_claims(path) == []


def test_prose_claims_need_an_asserting_neighbour(tmp_path):
    claim = "The two results are bit for bit the same weights."
    path = _notebook(tmp_path, ("code", "x = f()"), ("md", claim), ("code", "print(x)"))
    assert [index for index, _ in claims.unbacked_claims(path)] == [1]
    path = _notebook(tmp_path, ("code", "x = f()\ntorch.testing.assert_close(x, y)"), ("md", claim))
    assert claims.unbacked_claims(path) == []


def test_questions_and_summaries_are_not_claims(tmp_path):
    path = _notebook(tmp_path, ("md", "Is that the same as 4 GPUs?\n\n## Summary\n\n- They agree exactly."))
    assert claims.unbacked_claims(path) == []
