"""The built site shows nothing of the machine that built it: no absolute path of the
build machine (the repository, the home folder, temporary folders) on any page.
Run after `make book` (`make test` does both)."""
import os
import re
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "book" / "_build" / "html"
# Text files the site serves that the build writes (pages, search index, notebook sources).
SCANNED = (".html", ".js", ".json", ".ipynb", ".txt")
# Vendored packages copied in verbatim (MathJax...) are not written by the build.
VENDORED = ("_static/mathjax",)


def build_machine_paths():
    """Absolute folders that would only make sense on the build machine."""
    folders = {str(ROOT), str(Path.home()), tempfile.gettempdir(), "/tmp", "/root", "/home/"}
    folders |= {os.path.realpath(f) for f in folders if os.path.exists(f)}
    return sorted(f.rstrip("/") for f in folders if f not in ("", "/"))


def leaks(text, folders):
    """The build-machine paths in `text` (a folder followed by '/' or a word boundary)."""
    pattern = re.compile("|".join(re.escape(f) + r"(?=[/\s\"'<,;)]|$)" for f in folders))
    return sorted(set(pattern.findall(text)))


def _pages():
    for path in sorted(SITE.rglob("*")):
        relative = path.relative_to(SITE).as_posix()
        if path.suffix in SCANNED and not relative.startswith(VENDORED):
            yield relative, path


def test_leaks_finds_paths_but_not_lookalikes():
    folders = ["/work/main", "/tmp"]
    assert leaks("cached in /work/main/data/generated/run-1", folders) == ["/work/main"]
    assert leaks("written to /tmp/tmpab12/final.pt", folders) == ["/tmp"]
    assert leaks("see /work/mainline and tmp/ and /tmpx", folders) == []


def test_no_page_shows_a_path_of_the_build_machine():
    if not (SITE / "index.html").is_file():
        pytest.fail(f"the book is not built ({SITE / 'index.html'} is missing): run `make book` first")
    folders = build_machine_paths()
    found = {}
    for relative, path in _pages():
        hits = leaks(path.read_text(errors="replace"), folders)
        if hits:
            found[relative] = hits
    assert not found, f"pages showing build-machine paths: {found}"
