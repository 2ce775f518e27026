"""Every chapter opens with a "From the paper" box, and quotes only what the paper says.

The box is the markdown cell right after the setup cell, id from-paper-<chapter number>:

    > **From the paper** ({cite}`zhao2018psanet`, abstract): "A sentence of the abstract."
    >
    > What this chapter does with it.

The paper's text the project holds is its abstract and keywords, stored with its entry in
book/references.bib; every quoted string of a box must be found there word for word (a
quote may end with a full stop where the paper's sentence goes on).
"""
import re
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted((BOOK / "chapters").glob("*.ipynb"))
BOX = re.compile(r'^> \*\*From the paper\*\* \(\{cite\}`zhao2018psanet`, (?P<field>abstract|keywords)\): "')


def _normalized(text):
    return " ".join(text.split())


def _paper_fields():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    entry = bib[bib.index("@inproceedings{zhao2018psanet"):]
    entry = entry[:entry.index("\n}\n")]
    return {name: _normalized(value) for name, value in re.findall(r"^\s*(abstract|keywords)\s*=\s*\{(.*)\},?$", entry, re.M)}


def test_the_bibliography_holds_the_papers_abstract_and_keywords():
    fields = _paper_fields()
    assert fields["abstract"].startswith("We notice information flow") and fields["abstract"].endswith("generality.")
    assert "Adaptive context aggregation" in fields["keywords"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_a_box_that_quotes_the_paper(path):
    cells = nbformat.read(path, as_version=4).cells
    ids = [c.get("id") for c in cells]
    box = cells[ids.index("colab-setup") + 1]
    number = path.stem.split("_")[0]
    assert box.get("id") == f"from-paper-{number}" and box.cell_type == "markdown", (
        f"{path.name}: the cell after the setup cell must be the From-the-paper box, id from-paper-{number}")
    first_line = box.source.splitlines()[0]
    match = BOX.match(first_line)
    assert match, f"{path.name}: the box must start like the others: {BOX.pattern}"
    quotes = re.findall(r'"([^"]+)"', first_line)
    paper = _paper_fields()[match["field"]]
    for quote in quotes:
        assert _normalized(quote).removesuffix(".") in paper, f"{path.name} quotes words the paper's {match['field']} lacks: {quote!r}"
    assert sum("**From the paper**" in c.source for c in cells if c.cell_type == "markdown") == 1, path.name
