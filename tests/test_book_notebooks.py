"""The book's notebooks are committed clean and share one Colab header; the book's
configuration keeps the site offline and makes failing cells fail the build."""
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK / "tools"))
import sync_notebooks  # noqa: E402  (book/tools is not a package)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

NOTEBOOKS = sync_notebooks.notebooks()
BADGE = re.compile(r"^\[!\[Open in Colab\]\((?P<image>[^)]+)\)\]\((?P<link>[^)]+)\)$")


def _toc_files():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def _id(path):
    return path.relative_to(BOOK).as_posix()


def test_the_book_has_notebooks():
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_listed_in_the_toc(path):
    assert path.relative_to(BOOK).with_suffix("").as_posix() in _toc_files(), (
        f"{_id(path)} is not in book/_toc.yml (only_build_toc_files would silently skip it)"
    )


def test_every_toc_entry_exists():
    for entry in _toc_files():
        matches = [BOOK / f"{entry}{suffix}" for suffix in (".ipynb", ".md")]
        assert any(p.is_file() for p in matches), f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_starts_with_the_colab_badge_and_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    badge = nb.cells[0]
    assert badge.cell_type == "markdown" and badge.source == sync_notebooks.psanet_book.badge_source(path)
    match = BADGE.match(badge.source)
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    owner_name = repository.removeprefix("https://github.com/").rstrip("/")
    assert match["link"] == (
        f"https://colab.research.google.com/github/{owner_name}/blob/main/{path.relative_to(ROOT).as_posix()}"
    )
    assert (path.parent / match["image"]).resolve() == BOOK / "_static" / "colab-badge.svg"
    assert (BOOK / "_static" / "colab-badge.svg").is_file()

    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source == sync_notebooks.psanet_book.setup_source()
    assert f"git+{repository}" in first_code.source and '"google.colab" in sys.modules' in first_code.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.get('id')} has outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_exactly_what_the_sync_script_writes(path):
    text = path.read_text(encoding="utf-8")
    assert sync_notebooks.render(sync_notebooks.synced(nbformat.reads(text, as_version=4), path)) == text, (
        f"{_id(path)} is out of sync: run `python book/tools/sync_notebooks.py`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_shows_no_remote_images(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            assert not re.search(r"!\[[^\]]*\]\(\s*(https?:)?//", cell.source), cell.source
            assert not re.search(r"<img[^>]+src=[\"'](https?:)?//", cell.source), cell.source


def test_sync_script_repairs_a_notebook(tmp_path):
    path = BOOK / "chapters" / "99_scratch.ipynb"  # never written: only used for the badge path
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter", id="title"),
        nbformat.v4.new_code_cell("print(1)", id="work"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 3
    synced = sync_notebooks.synced(nb, path)
    assert [c.get("id") for c in synced.cells] == ["colab-badge", "title", "colab-setup", "work"]
    assert synced.cells[3].outputs == [] and synced.cells[3].execution_count is None
    again = sync_notebooks.synced(nbformat.reads(sync_notebooks.render(synced), as_version=4), path)
    assert sync_notebooks.render(again) == sync_notebooks.render(synced)


def test_config_executes_with_cache_and_fails_on_errors():
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    execute = config["execute"]
    assert execute["execute_notebooks"] == "cache" and execute["allow_errors"] is False
    assert execute["timeout"] >= 600
    assert config["only_build_toc_files"] is True
    assert config["sphinx"]["config"]["nb_execution_show_tb"] is True


def test_config_keeps_the_site_offline():
    text = (BOOK / "_config.yml").read_text()
    config = yaml.safe_load(text)
    assert "http" not in text, "the book configuration must not point the site at other hosts"
    assert config["sphinx"]["config"]["mathjax_path"] == "mathjax/tex-chtml.js"
    launch = config["launch_buttons"]
    assert not launch["thebe"] and not launch["binderhub_url"] and not launch["colab_url"]
    lock = (BOOK / "package-lock.json").read_text()
    assert '"node_modules/mathjax"' in lock and '"version": "3.' in lock


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name == "chapters"], ids=_id)
def test_chapter_ends_with_exercises_and_hidden_solutions(path):
    markdown = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    headings = [k for k, source in enumerate(markdown) if re.search(r"^## Exercises\s*$", source, re.M)]
    assert headings, f"{_id(path)} has no '## Exercises' section"
    after = "\n".join(markdown[headings[-1]:])
    exercises = len(re.findall(r"^\d+\. ", after.split("## Exercises")[-1].split("```")[0], re.M))
    solutions = len(re.findall(r"^```\{admonition\} Solution.*\n:class: dropdown$", after, re.M))
    assert exercises >= 2 and solutions == exercises, (
        f"{_id(path)}: {exercises} exercises, {solutions} solutions in dropdown admonitions")
