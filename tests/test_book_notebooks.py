"""The book's notebooks are committed clean and share one Colab header (badge, budget,
setup cell that installs this release); the book's
configuration keeps the site offline and makes failing cells fail the build."""
import base64
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
BADGE = re.compile(r'^<a href="(?P<link>[^"]+)"><img alt="Open in Colab" src="(?P<image>[^"]+)"/></a>$')


def _toc_files():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for chapter in part["chapters"]:
            files += [chapter["file"]] + [section["file"] for section in chapter.get("sections", [])]
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
def test_notebook_starts_with_the_colab_badge(path):
    nb = nbformat.read(path, as_version=4)
    badge = nb.cells[0]
    assert badge.cell_type == "markdown" and badge.source == sync_notebooks.psanet_book.badge_source(path)
    match = BADGE.match(badge.source)
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    owner_name = repository.removeprefix("https://github.com/").rstrip("/")
    assert match["link"] == (
        f"https://colab.research.google.com/github/{owner_name}/blob/v{sync_notebooks.psanet_book.version()}/"
        f"{path.relative_to(ROOT).as_posix()}"
    )
    # An absolute source (Colab cannot resolve a path of the repository) that is not a
    # request to another host: the badge image itself, inlined.
    prefix = "data:image/svg+xml;base64,"
    assert match["image"].startswith(prefix)
    assert base64.b64decode(match["image"][len(prefix):]) == (BOOK / "_static" / "colab-badge.svg").read_bytes()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_budget_and_folded_setup_cell_follow_the_title(path):
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    title = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("# "))
    assert ids[title + 1:title + 3] == ["colab-budget", "colab-setup"], ids[:6]
    assert all(c.cell_type == "markdown" for c in nb.cells[:title]), "a code cell runs before the setup cell"
    budget, setup = nb.cells[title + 1], nb.cells[title + 2]
    assert budget.source == sync_notebooks.psanet_book.budget_source(path)
    assert setup.source == sync_notebooks.psanet_book.setup_source(path) and setup.metadata["tags"] == ["hide-input"]
    typed = [c.get("id") for c in nb.cells if c.cell_type == "markdown" and "*Budget" in c.source]
    assert typed == ["colab-budget"], f"budgets live in psanet_book.BUDGETS only, also typed in {typed}"


def test_every_chapter_has_one_budget_and_no_budget_is_stale():
    budgets = sync_notebooks.psanet_book.BUDGETS
    assert sorted(budgets) == sorted(p.stem for p in NOTEBOOKS if p.parent.name == "chapters")
    for name, budget in budgets.items():
        assert budget["cpu_minutes"] > 0 and budget["trains"], name
        line = sync_notebooks.psanet_book.budget_source(BOOK / "chapters" / f"{name}.ipynb")
        assert f"at most {budget['cpu_minutes']} minutes on 2 CPU cores" in line
        assert ("not measured yet" in line) == (budget["t4_minutes"] is None), line


def test_setup_cell_installs_exactly_this_release():
    source = sync_notebooks.psanet_book.setup_source(BOOK / "chapters" / "01_receptive_fields.ipynb")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = sync_notebooks.psanet_book.version()
    assert re.search(r'^__version__ = "' + re.escape(version) + '"$',
                     (ROOT / "psanet_lite" / "__init__.py").read_text(), re.M)
    assert project["dynamic"] == ["version"], "the version must come from psanet_lite/__init__.py only"
    assert '"google.colab" in sys.modules' in source
    # Not on PyPI: the git tag of this version, from the one repository URL.
    assert f'"psanet-lite[cuda] @ git+{project["urls"]["Repository"]}@v{version}"' in source
    assert f'os.environ.get("{sync_notebooks.psanet_book.INSTALL_OVERRIDE}", ' in source
    # A chapter that needs another extra names it (the deployment chapter: ONNX export).
    deployment = sync_notebooks.psanet_book.setup_source(BOOK / "chapters" / "10_deployment.ipynb")
    assert f'"psanet-lite[cuda,export] @ git+{project["urls"]["Repository"]}@v{version}"' in deployment


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
    path = BOOK / "chapters" / "06_training.ipynb"  # never written: only its name is used
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter", id="title"),
        nbformat.v4.new_code_cell("print(1)", id="work"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 3
    nb.cells[0].source += "\n\n*Budget: typed into the chapter.*\n\nMore prose."
    synced = sync_notebooks.synced(nb, path)
    assert [c.get("id") for c in synced.cells] == ["colab-badge", "title", "colab-budget", "colab-setup", "work"]
    assert synced.cells[1].source == "# A chapter\n\nMore prose."
    assert synced.cells[4].outputs == [] and synced.cells[4].execution_count is None
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
    exercises = len(re.findall(r"^\d+\. ", after.split("## Exercises")[-1].split("<details")[0], re.M))
    solutions = len(re.findall(r'^<details class="solution"><summary>Solution', after, re.M))
    assert exercises >= 2 and solutions == exercises, (
        f"{_id(path)}: {exercises} exercises, {solutions} solutions folded (book/tools/solutions.py)")
