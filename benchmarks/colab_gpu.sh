#!/usr/bin/env bash
# Every chapter as a Colab GPU runtime runs it (device cuda, CuPy present), timed, on a
# machine with a CUDA GPU and no network: the GPU half of issue 17's "Colab runtime" check.
#
#     bash benchmarks/colab_gpu.sh [OUTDIR] [NOTEBOOK ...]    # from the repository root
#
# $PYTHON (default python3) stands for Colab's preinstalled Python: it needs torch with
# CUDA, torchvision, numpy, matplotlib, pillow, tqdm, tensorboard, CuPy, and to run the
# notebooks ipykernel, IPython, nbclient and nbformat. Those it lacks can travel as wheels
# in .whl/ (downloaded where there is a network, e.g. for Python 3.12:
#   python3 -m pip download --only-binary=:all: --python-version 3.12 -d .whl ipykernel nbclient nbformat
# ): they are installed into $PYTHON's environment first, so use a throw-away machine.
# psanet-lite itself is built here into a wheel (pip, no network) and installed by each
# chapter's own setup cell. Results: benchmarks/results/colab-<gpu>-<date>.{json,md}
# (per chapter: seconds, the chapter's T4 budget, the error of a failed cell), copied to OUTDIR.
set -u
out=${1:-benchmarks/results}
shift || true
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    $py -m pip install --quiet --no-index --find-links .whl ipykernel nbclient nbformat || exit 1
fi
$py -c "import torch, cupy, ipykernel, nbclient, nbformat; assert torch.cuda.is_available(), 'no CUDA device'
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__, torch.cuda.get_device_name(0))" || {
    echo "colab_gpu.sh: $py lacks a package above (see this script's header for .whl/)" >&2; exit 2; }
dist=$(mktemp -d)
$py -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$dist" . || exit 1
$py benchmarks/colab_notebooks.py --device cuda --base-python "$(command -v $py)" \
    --wheel "$(ls "$dist"/psanet_lite-*.whl)" --out-dir benchmarks/results "$@"
rc=$?
mkdir -p "$out"
[ "$out" -ef benchmarks/results ] || cp benchmarks/results/colab-* "$out"/
exit $rc
