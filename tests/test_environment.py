"""environment.yml (conda) and pyproject.toml must list the same packages."""
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
    for extra in ("cuda", "dev", "export"):
        requirements += project["optional-dependencies"][extra]
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
