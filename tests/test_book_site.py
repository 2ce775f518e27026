"""The built site shows nothing of the machine that built it: no absolute path of the
build machine (the repository, the home folder, temporary folders) on any page; and the
page with the live model stays within its size budget.
Run after `make book` (`make test` does both)."""
import base64
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
# Issue 19: the page of the live model (chapter 10) loads at most 15 MB of model and
# runtime, the model at most 3 MB.
LIVE_MODEL_PAGE = "chapters/10_deployment.html"
PAGE_BUDGET_BYTES = 15_000_000
MODEL_BUDGET_BYTES = 3_000_000


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


def test_the_live_model_page_stays_within_its_budget():
    from psanet_lite.export.explorable import RUNTIME_FILES, WASM_BINARY

    page = SITE / LIVE_MODEL_PAGE
    if not page.is_file():
        pytest.fail(f"{page} is missing: run `make book` first")
    # what the explorable loads of the runtime (psanet_lite.export.explorable.copy_runtime)
    runtime = [SITE / "_static" / "onnxruntime-web" / name for name in RUNTIME_FILES + (f"{WASM_BINARY}.gz",)]
    missing = [str(path) for path in runtime if not path.is_file()]
    assert not missing, f"the runtime's files are missing from the site: {missing}"
    models = re.findall(r'"model": "([A-Za-z0-9+/=]+)"', page.read_text(encoding="utf-8"))
    assert len(models) == 1, f"{LIVE_MODEL_PAGE} embeds {len(models)} models, expected the explorable's one"
    model_bytes = len(base64.b64decode(models[0]))
    total = page.stat().st_size + sum(path.stat().st_size for path in runtime)
    assert model_bytes <= MODEL_BUDGET_BYTES, f"the page's model is {model_bytes} bytes"
    assert total <= PAGE_BUDGET_BYTES, f"{LIVE_MODEL_PAGE} and its runtime weigh {total} bytes"
