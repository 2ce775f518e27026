"""The wheel carries everything an installed psanet_lite needs, the CUDA sources and the figures' JavaScript and CSS included."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_kernel_source(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "--quiet", "--out-dir", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("psanet_lite-*.whl")
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
