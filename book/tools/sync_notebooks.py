"""Rewrite every book notebook's Colab badge, budget line and setup cell from the
templates, and strip outputs, so notebooks are committed clean.

    python book/tools/sync_notebooks.py            # rewrite book/**/*.ipynb in place
    python book/tools/sync_notebooks.py --check    # only report, exit 1 if any would change
    python book/tools/sync_notebooks.py PATH ...   # just these notebooks

The templates, the budgets and the release to install come from book/_ext/psanet_book.py.
Cell 0 becomes the badge; the budget line and the setup cell (folded: tag hide-input) go
right after the chapter's title cell, before its prose, so they never cut into the text
that leads to a code cell. A budget paragraph typed into a chapter's own cells is dropped:
the budgets have one home, psanet_book.BUDGETS.
"""

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BOOK / "_ext"))
import psanet_book  # noqa: E402  (needs the path above)

# Notebook metadata every chapter gets: the kernel the build runs, and a GPU runtime on Colab.
METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "accelerator": "GPU",
    "colab": {"gpuType": "T4", "provenance": []},
}
# Per-cell metadata that front ends add while running; none of it belongs in the repository.
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime", "jp-MarkdownHeadingCollapsed")
TEMPLATE_CELL_IDS = (psanet_book.BADGE_CELL_ID, psanet_book.BUDGET_CELL_ID, psanet_book.SETUP_CELL_ID)
# A paragraph of its own that states a budget in italics: "*Budget: ...*".
TYPED_BUDGET = re.compile(r"(?:^|\n\n)\*Budget\b[^*]*\*(?=\n\n|$)")


def notebooks():
    """Every notebook of the book (the build folder and checkpoints excluded)."""
    return sorted(
        p for p in BOOK.rglob("*.ipynb")
        if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts and "node_modules" not in p.parts
    )


def synced(nb, path):
    """A copy of notebook `nb` (nbformat node) with template cells and no outputs."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if c.get("id") not in TEMPLATE_CELL_IDS]
    for cell in cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.source = TYPED_BUDGET.sub("", cell.source)
    badge = nbformat.v4.new_markdown_cell(psanet_book.badge_source(path), id=psanet_book.BADGE_CELL_ID)
    budget = nbformat.v4.new_markdown_cell(psanet_book.budget_source(path), id=psanet_book.BUDGET_CELL_ID)
    setup = nbformat.v4.new_code_cell(psanet_book.setup_source(path), id=psanet_book.SETUP_CELL_ID)
    setup.metadata["tags"] = ["hide-input"]
    title = next((i + 1 for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("# ")), 0)
    nb.cells = [badge] + cells[:title] + [budget, setup] + cells[title:]
    nb.metadata = {**{k: v for k, v in nb.metadata.items() if k != "widgets"}, **copy.deepcopy(METADATA)}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def render(nb):
    """The exact text a notebook is stored as."""
    return nbformat.writes(nb) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all of book/)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of sync")
    args = parser.parse_args(argv)
    stale = []
    for path in args.paths or notebooks():
        text = path.read_text(encoding="utf-8")
        new_text = render(synced(nbformat.reads(text, as_version=4), path))
        if new_text != text:
            stale.append(path)
            if not args.check:
                path.write_text(new_text, encoding="utf-8")
    verb = "out of sync" if args.check else "rewritten"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
