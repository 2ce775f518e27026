"""Find the book's claims about computed results that no assertion backs.

A claim is prose or printed output that says a computed result equals, matches or
agrees with something ("bit for bit", "exactly", "the same as", "the next cell checks
it", a printed "==" ...). The book may only make such a claim where the code asserts
it, so every claim must sit next to an assertion:

- a code cell whose printed text makes a claim must itself assert (an `assert`
  statement or a call of an `assert*` function such as torch.testing.assert_close);
- a markdown cell that makes a claim must have an asserting code cell right before or
  right after it (the cell that computes the result it describes).

    python book/tools/claims.py              # list unbacked claims, exit 1 if any
    python book/tools/claims.py PATH ...     # just these notebooks

tests/test_book_claims.py runs the same check in `make test`.
"""

import ast
import re
import sys
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parents[1]

# Words that assert a computed fact. Prose that only describes (e.g. "equal weights")
# is not matched: each pattern needs a verb or an adverb of identity.
CLAIM = re.compile(
    r"\b(equals?\b(?! weights?)|is equal|are equal|equal to|exactly|bit for bit|bitwise|identical"
    r"|the same as|agrees?\b|matches|match the|checks it|checks that|verif(?:y|ies)|confirms)\b"
    r"|==",
    re.IGNORECASE,
)
# Code spans, math and HTML tags (a badge's data: URI) say nothing in words.
_CODE_SPAN = re.compile(r"`[^`]*`|\$[^$]*\$|<[^>]*>")
_RECAP = re.compile(r"^#+\s*(?:Summary|Exercises)\b.*$", re.MULTILINE)


def _is_assertion(node):
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert") or name == "glue"
    return False


def _parse(source):
    # IPython magics (%pip, !cmd) are not Python: blank them out before parsing.
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def asserts(cell):
    """True when the code cell contains an assertion (or glues a computed value)."""
    tree = _parse(cell.source)
    return tree is not None and any(_is_assertion(node) for node in ast.walk(tree))


def printed_claims(cell):
    """The string constants of print(...) calls in a code cell that make a claim."""
    tree = _parse(cell.source)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and CLAIM.search(sub.value):
                    found.append(sub.value.strip())
    return found


def prose_claims(cell):
    """The sentences of a markdown cell that make a claim (code spans, math and tags ignored).

    Questions claim nothing, and a Summary or Exercises section restates or asks: the
    claims it repeats are checked where the chapter first makes them.
    """
    text = _RECAP.split(_CODE_SPAN.sub("", cell.source))[0]
    sentences = re.split(r"(?<=[.!?:])\s+", text)
    return [" ".join(s.split()) for s in sentences if CLAIM.search(s) and not s.rstrip().endswith("?")]


def unbacked_claims(path):
    """[(cell index, claim text)] of one notebook's claims that no assertion backs."""
    cells = nbformat.read(path, as_version=4).cells
    problems = []
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            if not asserts(cell):
                problems += [(index, f"prints {claim!r} without asserting it") for claim in printed_claims(cell)]
        elif cell.cell_type == "markdown":
            claims = prose_claims(cell)
            if not claims:
                continue
            neighbours = [cells[i] for i in (index - 1, index + 1) if 0 <= i < len(cells)]
            if not any(c.cell_type == "code" and asserts(c) for c in neighbours):
                problems += [(index, f"says {claim!r} but neither neighbouring code cell asserts")
                             for claim in claims]
    return problems


def notebooks():
    return sorted(p for p in (BOOK / "chapters").glob("*.ipynb"))


def main(argv):
    paths = [Path(a) for a in argv] or notebooks()
    count = 0
    for path in paths:
        for index, problem in unbacked_claims(path):
            print(f"{path.resolve().relative_to(BOOK.parent)} cell {index}: {problem}")
            count += 1
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
