"""Fold the exercises' solutions so that they stay hidden on the site, in JupyterLab and
in Colab, code cells included.

A solution is written in a markdown cell as

    <details class="solution"><summary>Solution 2</summary>

    The text, with $math$ and `code`.

    </details>

which every Markdown renderer the book meets folds (Jupyter Book's MyST parser, JupyterLab
and Colab; MyST's `{admonition}` dropdowns show as plain text in Colab). The code cell that
checks a solution follows its markdown cell: it carries the `hide-cell` tag (folded on the
site and in JupyterLab) and starts with a Colab form title, which Colab shows instead of the
code.

    python book/tools/solutions.py            # rewrite every chapter in place
    python book/tools/solutions.py --check    # exit 1 if a chapter would change

Old-style solutions (```{admonition} Solution N``` with `:class: dropdown`) are rewritten.
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parents[1]
HIDE_TAG = "hide-cell"
_ADMONITION = re.compile(
    r"```\{admonition\}\s*(?P<title>Solution[^\n]*)\n(?::class:[^\n]*\n)?\n?(?P<body>.*?)\n```",
    re.DOTALL,
)
_DETAILS = re.compile(r'<details class="solution"><summary>(?P<title>[^<]*)</summary>')
FORM = "#@title {title} (code) {{display-mode: \"form\"}}"


def details(title, body):
    """The folded form of one solution."""
    return f'<details class="solution"><summary>{title.strip()}</summary>\n\n{body.strip()}\n\n</details>'


def solution_titles(cell):
    """Titles of the solutions a markdown cell holds, in order."""
    return [m.group("title").strip() for m in _DETAILS.finditer(cell.source)]


def fold(nb):
    """Rewrite a notebook's solutions in place; return True if anything changed."""
    changed = False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        source = _ADMONITION.sub(lambda m: details(m.group("title"), m.group("body")), cell.source)
        if source != cell.source:
            cell.source, changed = source, True
        titles = solution_titles(cell)
        following = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
        if titles and following is not None and following.cell_type == "code":
            changed |= _fold_code(following, titles[-1])
    return changed


def _fold_code(cell, title):
    changed = False
    tags = cell.metadata.setdefault("tags", [])
    if HIDE_TAG not in tags:
        tags.append(HIDE_TAG)
        changed = True
    form = FORM.format(title=title)
    if not cell.source.startswith("#@title"):
        cell.source = f"{form}\n{cell.source}"
        changed = True
    return changed


def chapters():
    return sorted((BOOK / "chapters").glob("*.ipynb"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if a chapter would change")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    stale = []
    for path in args.paths or chapters():
        nb = nbformat.read(path, as_version=4)
        if fold(nb):
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    for path in stale:
        print(f"{'would fold' if args.check else 'folded'} solutions in {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
