"""Every CUDA kernel source in kernels/ compiles to PTX for the GPUs we target.

No GPU is needed: nvcc and NVRTC only translate. nvcc is a dev dependency (the
nvidia-cuda-nvcc wheel); a plain `nvcc` on PATH is used when the wheel is not installed.
NVRTC is what compiles the sources at run time (cupy.RawModule, psanet_lite/ops/cupy_runtime.py),
with CuPy's own NVRTC binding and the options cupy_runtime passes.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = sorted((Path(__file__).resolve().parents[1] / "kernels").glob("*.cu"))
ARCHITECTURES = ["sm_75", "sm_80", "sm_90"]  # Turing (Colab T4), Ampere (A100), Hopper (H100)


def find_nvcc():
    """Path of nvcc: from the nvidia-cuda-nvcc wheel (nvidia/cu*/bin or nvidia/cuda_nvcc/bin), else PATH."""
    try:
        import nvidia
    except ImportError:
        nvidia = None
    if nvidia is not None:
        for root in map(Path, nvidia.__path__):
            candidates = sorted(root.glob("cu*/bin/nvcc"), reverse=True)  # newest CUDA first
            candidates += [root / "cuda_nvcc" / "bin" / "nvcc"]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
    on_path = shutil.which("nvcc")
    return Path(on_path) if on_path else None


def test_there_are_kernels():
    assert any(path.name == "psamask.cu" for path in KERNELS), KERNELS


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda path: path.name)
def test_kernel_compiles_to_ptx(kernel, arch, tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.fail(
            "nvcc not found: install the dev dependencies (the nvidia-cuda-nvcc wheel provides "
            "nvidia/cu13/bin/nvcc inside the environment) or put a CUDA toolkit's nvcc on PATH"
        )
    include = nvcc.parent.parent / "include"
    command = [str(nvcc), "--ptx", f"-arch={arch}", f"-I{include}", str(kernel), "-o", str(tmp_path / "out.ptx")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    assert ".entry" in (tmp_path / "out.ptx").read_text()


@pytest.mark.parametrize("arch", [a.replace("sm_", "compute_") for a in ARCHITECTURES])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda path: path.name)
def test_kernel_compiles_with_nvrtc(kernel, arch):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy (the cuda extra) is not installed")
    program = nvrtc.createProgram(kernel.read_text(), kernel.name, [], [])
    try:
        nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", "--std=c++14"])
    except nvrtc.NVRTCError as error:
        pytest.fail(f"NVRTC cannot compile {kernel.name} for {arch}: {error}\n{nvrtc.getProgramLog(program)}")
    assert ".entry" in nvrtc.getPTX(program).decode()
