"""A notebook whose cell raises fails the book build (with the book's own configuration)."""
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def test_a_failing_cell_fails_the_build(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the book's extension reads the repository URL
    for name in ("_config.yml", "references.bib"):
        shutil.copy(BOOK / name, book)
    shutil.copytree(BOOK / "_ext", book / "_ext")
    (book / "intro.md").write_text("# Intro\n")
    (book / "bibliography.md").write_text("# Bibliography\n\n```{bibliography}\n:all:\n```\n")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: failing\n  - file: bibliography\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Failing", id="title"),
        nbformat.v4.new_code_cell("raise RuntimeError('this cell fails on purpose')", id="fails"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "failing.ipynb")

    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(book), "--warningiserror", "--keep-going"],
        capture_output=True, text=True, timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0, "the build passed although a cell raised"
    assert "Executing notebook failed" in log
    assert "this cell fails on purpose" in log  # the traceback is in the log
