"""environment.yml (conda) and pyproject.toml must list the same packages: the
library's requirements and every extra."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def _split(requirement: str) -> tuple[str, str]:
    """'torch>=2.1' -> ('torch', '>=2.1'); names compared PEP 503-normalized."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return dict(_split(r) for r in requirements)


def _environment_pip_requirements() -> dict[str, str]:
    # The file is plain enough to read without a YAML dependency: the pip list is
    # the block of "      - " items under "  - pip:".
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:") + 1
    items = []
    for line in lines[start:]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line.startswith("      - "):
            break
        items.append(stripped[2:])
    return dict(_split(item) for item in items if not item.startswith("-e"))


def test_environment_yml_matches_pyproject():
    expected = _pyproject_requirements()
    listed = _environment_pip_requirements()
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    differing = sorted(n for n in set(expected) & set(listed) if expected[n] != listed[n])
    assert not (missing or extra or differing), (
        f"environment.yml disagrees with pyproject.toml: missing {missing}, "
        f"not in pyproject {extra}, different ranges "
        f"{[(n, listed[n], expected[n]) for n in differing]}"
    )


def test_environment_yml_installs_the_project_itself():
    assert "      - -e ." in (ROOT / "environment.yml").read_text().splitlines()


def test_the_library_requires_no_book_toolchain():
    # `pip install psanet-lite` in Colab must not replace Colab's Jupyter stack.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_split(r)[0] for r in project["dependencies"]}
    toolchain = {"jupyter-book", "jupyterlab", "ipywidgets", "notebook", "pytest", "cupy-cuda12x"}
    assert not required & toolchain, f"move {sorted(required & toolchain)} to an extra"
    assert {"jupyter-book", "jupyterlab", "ipywidgets"} <= {
        _split(r)[0] for r in project["optional-dependencies"]["book"]
    }


# Import names that differ from the distribution's name.
DISTRIBUTION_OF = {"PIL": "pillow", "cupy": "cupy-cuda12x"}


def _third_party_imports():
    """{top-level module: (is imported at module level somewhere, files)} over psanet_lite/."""
    import ast

    found = {}
    for path in (ROOT / "psanet_lite").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"psanet_lite"}:
                eager, files = found.get(top, (False, set()))
                found[top] = (eager or id(node) in module_level, files | {path.name})
    return found


def test_every_import_of_the_library_is_a_requirement_or_a_lazy_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_split(r)[0] for r in project["dependencies"]}
    extras = {_split(r)[0] for extra in project["optional-dependencies"].values() for r in extra}
    imports = _third_party_imports()
    assert {"torch", "numpy"} <= set(imports), "the scan found none of the library's imports"
    for module, (eager, files) in sorted(imports.items()):
        name = DISTRIBUTION_OF.get(module, module).lower()
        if name not in required:
            assert name in extras and not eager, (
                f"{module} (imported in {sorted(files)}) is neither required by pyproject.toml nor an "
                "extra imported inside the function that needs it")
