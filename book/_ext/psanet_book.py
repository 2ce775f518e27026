"""The book's one source for its Colab badge and setup cell, and a Sphinx extension.

The repository URL lives in pyproject.toml ([project.urls] Repository) and nowhere else:
book/tools/sync_notebooks.py writes every notebook's first cells from the templates
below, tests/test_book_notebooks.py checks them, and the Sphinx extension offers the
URL to Markdown pages as the substitution {{ repository }}.

As an extension (book/_config.yml, sphinx.local_extensions) it also copies MathJax
into the built site, which serves it itself, stops the build when MathJax has not been
installed, and keeps the unused live-code (thebe) scripts off the pages.
"""

import os
import shutil
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
ROOT = BOOK.parent
BRANCH = "main"  # the branch Colab opens notebooks from
BADGE_CELL_ID = "colab-badge"
SETUP_CELL_ID = "colab-setup"

SETUP_TEMPLATE = '''\
# On Colab: install psanet-lite (with its CUDA extra) from the repository.
# Elsewhere it is already installed (`make book`, or `pip install -e .`) and this
# cell only picks the device the chapter runs on.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "psanet-lite[cuda] @ git+{repository}"

import torch

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"running on {{device}}")'''


def repository_url():
    """[project.urls] Repository of pyproject.toml, e.g. 'https://github.com/owner/name'."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        url = tomllib.load(f)["project"]["urls"]["Repository"]
    if not url.startswith("https://github.com/"):
        raise ValueError(f"the Colab badge needs a GitHub repository URL, pyproject.toml has {url!r}")
    return url.rstrip("/").removesuffix(".git")


def badge_source(notebook):
    """Markdown of the Colab badge for a notebook at path `notebook` (inside book/).

    The image is the local book/_static/colab-badge.svg, so the page loads nothing from
    other hosts; only following the link leaves the site.
    """
    notebook = Path(notebook).resolve()
    github_path = repository_url().removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{github_path}/blob/{BRANCH}/{notebook.relative_to(ROOT).as_posix()}"
    badge = Path(os.path.relpath(BOOK / "_static" / "colab-badge.svg", notebook.parent)).as_posix()
    return f"[![Open in Colab]({badge})]({colab})"


def setup_source():
    """Source of the setup cell every notebook runs first."""
    return SETUP_TEMPLATE.format(repository=repository_url())


# MathJax comes from the npm package book/package.json pins (installed by
# `npm ci --prefix book`): the combined TeX->HTML component plus the pieces it loads
# on demand (fonts, TeX extensions, menu, accessibility). Copied into the built site
# rather than added to _static, where Jupyter Book would turn every .js into a <script>.
MATHJAX_PACKAGE = BOOK / "node_modules" / "mathjax" / "es5"
MATHJAX_PARTS = ("tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y", "sre", "adaptors")


def _check_mathjax(app):
    if app.builder.format != "html":
        return
    path = app.config.mathjax_path
    if path != "mathjax/tex-chtml.js":
        _logger().warning("mathjax_path must be mathjax/tex-chtml.js (served by the site itself), got %s", path)
    elif not (MATHJAX_PACKAGE / "tex-chtml.js").is_file():
        _logger().warning(
            "MathJax is not installed in %s: run `make book`, or `npm ci --prefix book` first",
            MATHJAX_PACKAGE,
        )


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html" or not MATHJAX_PACKAGE.is_dir():
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = MATHJAX_PACKAGE / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)


# onnxruntime-web (pinned by book/package.json) runs the exported model in the reader's
# browser (psanet_lite.export.explorable): the WebAssembly build only, single-threaded.
ONNXRUNTIME_PACKAGE = BOOK / "node_modules" / "onnxruntime-web" / "dist"
ONNXRUNTIME_PARTS = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def _copy_onnxruntime(app, exception):
    if exception is not None or app.builder.format != "html" or not ONNXRUNTIME_PACKAGE.is_dir():
        return
    target = Path(app.outdir) / "_static" / "onnxruntime-web"
    target.mkdir(parents=True, exist_ok=True)
    for part in ONNXRUNTIME_PARTS:
        shutil.copy2(ONNXRUNTIME_PACKAGE / part, target / part)


def _add_substitutions(app, config):
    url = repository_url()
    config.myst_substitutions = {**config.myst_substitutions, "repository": f"[{url}]({url})"}


def _drop_thebe(app, pagename, templatename, context, doctree):
    # Jupyter Book always loads sphinx-thebe, whose configuration script names a CDN and
    # is added twice (a JavaScript error: const declared twice). The book has no
    # live-code button, so neither script belongs on its pages.
    def is_thebe(script):
        filename = str(getattr(script, "filename", script) or "")
        body = getattr(script, "attributes", {}).get("body", "")
        return "sphinx-thebe" in filename or "THEBE_JS_URL" in body

    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not is_thebe(s)]


def _logger():
    from sphinx.util import logging

    return logging.getLogger(__name__)


def setup(app):
    app.connect("config-inited", _add_substitutions)
    app.connect("builder-inited", _check_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_onnxruntime)
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
