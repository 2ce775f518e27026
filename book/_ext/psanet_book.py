"""The book's one source for its notebooks' first cells, and a Sphinx extension.

Everything a chapter says before its own content comes from here, and
book/tools/sync_notebooks.py writes it into every notebook (tests/test_book_notebooks.py
checks it): the Colab badge, the budget line (from the one table BUDGETS) and the setup
cell that installs this book's release of psanet-lite on Colab. The repository URL lives
in pyproject.toml ([project.urls] Repository) and the version in psanet_lite/__init__.py
(__version__), nowhere else; the Sphinx extension offers the URL to Markdown pages as the
substitution {{ repository }}.

As an extension (book/_config.yml, sphinx.local_extensions) it also copies MathJax
into the built site, which serves it itself, stops the build when MathJax has not been
installed, and keeps the unused live-code (thebe) scripts off the pages.
"""

import ast
import base64
import shutil
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
ROOT = BOOK.parent
BADGE_CELL_ID = "colab-badge"
BUDGET_CELL_ID = "colab-budget"
SETUP_CELL_ID = "colab-setup"
# psanet-lite is not on the package index: each release is the git tag v<version>.
# Set True once `psanet-lite==<version>` can be installed with pip.
PUBLISHED_ON_PYPI = False
# Overrides what the setup cell installs on Colab (a wheel's path, a fork, a branch):
# tests/test_colab_notebooks.py points it at the wheel `make dist` builds.
INSTALL_OVERRIDE = "PSANET_LITE_INSTALL"

# What each chapter costs from a fresh runtime (nothing cached, nothing installed but
# what Colab has): minutes on 2 CPU cores, the ceiling tests/test_colab_notebooks.py
# holds every chapter to (install from the local wheel included), and on a T4-class
# GPU, minutes or None while nobody has measured it (benchmarks/colab_gpu.sh does).
# `trains` says what the time goes to; `extras`, which extras its setup cell installs.
# The training chapters' CPU budgets hold the runs' training times measured on an idle
# 2-core machine (2026-12-02: chapter 6's model 312 s, its marker run 350 s) with margin.
BUDGETS = {
    "01_receptive_fields": {"cpu_minutes": 3, "t4_minutes": None, "trains": "nothing"},
    "02_why_context": {"cpu_minutes": 2, "t4_minutes": None, "trains": "nothing"},
    "03_pointwise_spatial_attention": {"cpu_minutes": 2, "t4_minutes": None, "trains": "nothing"},
    "04_psamask_on_gpu": {"cpu_minutes": 3, "t4_minutes": None, "trains": "nothing"},
    "04b_fused_attention": {"cpu_minutes": 3, "t4_minutes": None, "trains": "nothing"},
    "05_building_psanet": {"cpu_minutes": 3, "t4_minutes": None, "trains": "nothing"},
    "06_training": {"cpu_minutes": 8, "t4_minutes": None, "trains": "the book's model"},
    "07_evaluation_and_ablation": {
        "cpu_minutes": 40, "t4_minutes": None,
        "trains": "the ablation's models on both data sets, chapter 6's too when the cache does not hold it",
    },
    "08_looking_inside": {
        "cpu_minutes": 15, "t4_minutes": None,
        "trains": "chapter 6's model and its marker run when the cache does not hold them",
    },
    "09_scaling_up": {"cpu_minutes": 3, "t4_minutes": None, "trains": "nothing"},
    "10_deployment": {
        "cpu_minutes": 15, "t4_minutes": None,
        "trains": "chapter 6's model and its marker run when the cache does not hold them",
        "extras": ("cuda", "export"),
    },
}
# The extras a chapter's setup cell installs when its BUDGETS row names none.
EXTRAS = ("cuda",)

SETUP_TEMPLATE = '''\
# On Colab: install the psanet-lite release this book belongs to, {release}, with its
# {extras} extras ({install_override} overrides what is installed). Elsewhere psanet-lite is
# already installed (`make book`, `pip install -e .`) and this cell only picks the device.
import os
import sys

if "google.colab" in sys.modules:
    requirement = os.environ.get("{install_override}", "{requirement}")
    %pip install --quiet "{{requirement}}"

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


def version():
    """psanet_lite.__version__, read from psanet_lite/__init__.py without importing the library."""
    tree = ast.parse((ROOT / "psanet_lite" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return node.value.value
    raise ValueError("psanet_lite/__init__.py assigns no __version__")


def requirement(extras=EXTRAS):
    """What the setup cell installs on Colab: exactly this book's release, with `extras`."""
    name = f"psanet-lite[{','.join(extras)}]"
    if PUBLISHED_ON_PYPI:
        return f"{name}=={version()}"
    return f"{name} @ git+{repository_url()}@v{version()}"


def badge_source(notebook):
    """Markdown (an HTML link) of the Colab badge for a notebook at path `notebook` (inside book/).

    The link opens the notebook of this book's release (the git tag v<version>), the
    notebook that matches what its setup cell installs. The image is
    book/_static/colab-badge.svg inlined as a data: URI: an absolute source
    that Colab can show, while the site loads nothing from other hosts. It is written as
    HTML because Markdown parsers (markdown-it, hence MyST) refuse SVG data: URIs in
    Markdown's image syntax.
    """
    notebook = Path(notebook).resolve()
    github_path = repository_url().removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{github_path}/blob/v{version()}/{notebook.relative_to(ROOT).as_posix()}"
    svg = base64.b64encode((BOOK / "_static" / "colab-badge.svg").read_bytes()).decode("ascii")
    return f'<a href="{colab}"><img alt="Open in Colab" src="data:image/svg+xml;base64,{svg}"/></a>'


def budget_source(notebook):
    """Markdown of the budget line of a notebook at path `notebook`, from BUDGETS."""
    budget = BUDGETS[Path(notebook).stem]
    gpu = (f"about {budget['t4_minutes']} minutes" if budget["t4_minutes"] is not None
           else "not measured yet")
    return (f"*Budget, from a fresh runtime: at most {budget['cpu_minutes']} minutes on 2 CPU cores; "
            f"on a T4-class GPU {gpu}. Trains {budget['trains']}.*")


def setup_source(notebook):
    """Source of the setup cell the notebook at path `notebook` runs first."""
    extras = BUDGETS[Path(notebook).stem].get("extras", EXTRAS)
    return SETUP_TEMPLATE.format(release=f"v{version()}", requirement=requirement(extras),
                                 install_override=INSTALL_OVERRIDE, extras=" and ".join(extras))


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
# browser (psanet_lite.export.explorable, whose copy_runtime says what the page loads).
ONNXRUNTIME_PACKAGE = BOOK / "node_modules" / "onnxruntime-web" / "dist"


def _copy_onnxruntime(app, exception):
    if exception is not None or app.builder.format != "html" or not ONNXRUNTIME_PACKAGE.is_dir():
        return
    from psanet_lite.export.explorable import copy_runtime

    copy_runtime(ONNXRUNTIME_PACKAGE, Path(app.outdir) / "_static" / "onnxruntime-web")


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
