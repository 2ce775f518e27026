"""The release: `make dist` builds an sdist and a wheel that carry everything an installed
psanet_lite needs (the CUDA sources and the figures' JavaScript and CSS included), and the
wheel alone, without extras, installs into a fresh virtual environment where the CLI works."""
import ast
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

BOOK_TOOLCHAIN = ("jupyter-book", "jupyterlab", "ipywidgets", "cupy-cuda12x", "pytest")


def source_version():
    """psanet_lite.__version__, read from the source without importing it (the one home)."""
    tree = ast.parse((ROOT / "psanet_lite" / "__init__.py").read_text())
    (value,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__version__"]]
    return value


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """dist/ as `make dist` writes it: the sdist and the wheel."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "uv", "build", "--quiet", "--out-dir", str(out), str(ROOT)], check=True)
    return out


@pytest.fixture(scope="module")
def lean_env(dist, tmp_path_factory):
    """A fresh virtual environment holding the wheel and its requirements, no extras.

    torch and torchvision are pinned by pyproject's [tool.uv] constraints, the versions
    the lock holds, so uv takes them from its cache instead of downloading another build.
    """
    (wheel,) = dist.glob("psanet_lite-*.whl")
    env = tmp_path_factory.mktemp("lean") / "venv"
    constraints = env.parent / "constraints.txt"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    constraints.write_text("\n".join(pyproject["tool"]["uv"]["constraint-dependencies"]) + "\n")
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(uv + ["venv", "--quiet", "--python", sys.executable, str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(uv + ["pip", "install", "--quiet", "--python", str(python), "-c", str(constraints), str(wheel)],
                   check=True)
    return env


def _run(env, *args, cwd):
    # PYTHONPATH would let the checkout's psanet_lite shadow the installed one.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=environ, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_dist_holds_the_sdist_and_the_wheel_of_the_one_version(dist):
    version = source_version()
    assert sorted(p.name for p in dist.iterdir() if not p.name.startswith(".")) == [
        f"psanet_lite-{version}-py3-none-any.whl", f"psanet_lite-{version}.tar.gz"]
    sdist = tarfile.open(dist / f"psanet_lite-{version}.tar.gz")
    names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "psanet_lite/__init__.py", "kernels/psamask.cu"} <= names


def test_wheel_ships_every_kernel_source(dist):
    (wheel,) = dist.glob("psanet_lite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "kernels").glob("*.cu"))
    assert sources, "kernels/ holds no .cu file"
    missing = [s for s in sources if f"psanet_lite/kernels/{s}" not in names]
    assert not missing, f"wheel lacks kernel sources {missing}"
    packages = sorted(
        str(init.relative_to(ROOT).as_posix()) for init in (ROOT / "psanet_lite").rglob("__init__.py")
    )
    unshipped = [p for p in packages if p not in names]
    assert not unshipped, f"wheel lacks packages {unshipped}: list them in pyproject.toml"
    static = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "psanet_lite" / "viz" / "static").iterdir())
    assert static, "psanet_lite/viz/static holds no file"
    unshipped_static = [s for s in static if s not in names]
    assert not unshipped_static, f"wheel lacks the figures' files {unshipped_static}: see package-data in pyproject.toml"


def test_lean_wheel_installs_without_the_book_toolchain(lean_env, tmp_path):
    code = ("import importlib.metadata as m, psanet_lite;"
            "print(psanet_lite.__file__); print(m.version('psanet-lite'));"
            "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))")
    file, version, names = _run(lean_env, lean_env / "bin" / "python", "-c", code, cwd=tmp_path).splitlines()
    assert Path(file).is_relative_to(lean_env), f"imported {file}, not the installed wheel"
    assert version == source_version()
    installed = ast.literal_eval(names)
    assert not [n for n in BOOK_TOOLCHAIN if n in installed], installed


def test_lean_wheel_runs_info_and_predict(lean_env, tmp_path):
    cli = lean_env / "bin" / "psanet-lite"
    info = _run(lean_env, cli, "info", "psanet_lite_context", cwd=tmp_path)
    assert info.startswith("psanet_lite_context\n") and "parameters" in info and "FLOPs" in info
    # An untrained model's checkpoint, saved by the installed library, and one 96x80 image.
    _run(lean_env, lean_env / "bin" / "python", "-c",
         "from PIL import Image; import numpy as np;"
         "from psanet_lite import build_model, get_config;"
         "from psanet_lite.checkpoint import save_checkpoint;"
         "config = get_config('psanet_lite_context');"
         "save_checkpoint('model.pt', build_model(config), config);"
         "Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save('scene.png')",
         cwd=tmp_path)
    _run(lean_env, cli, "predict", "scene.png", "--checkpoint", "model.pt", "--device", "cpu", "--out-dir", "out",
         cwd=tmp_path)
    labels = _run(lean_env, lean_env / "bin" / "python", "-c",
                  "from PIL import Image; import numpy as np; a = np.asarray(Image.open('out/scene.png'));"
                  "print(a.shape, int(a.max()))", cwd=tmp_path)
    shape, top = labels.rsplit(" ", 1)
    assert shape == "(80, 96)" and 0 <= int(top) < 4, labels
    assert (tmp_path / "out" / "scene_overlay.png").is_file()
