#!/usr/bin/env bash
# Everything this project checks and measures on a CUDA GPU, in one go, in priority order:
# the GPU tests first, then the benchmarks whose results are committed. Each step has a time
# limit and its own log; after every step the logs and benchmarks/results/ are packed into
# OUTDIR, so whatever finished survives a run that is cut short.
#
#     bash benchmarks/gpu_session.sh OUTDIR [STEP ...]     # from the repository root
#
# Steps (default: all of them, in this order): tests psa psa-bf16 psamask train train-fullres
# model cli tests-all (the whole suite but the book builds and the browser). A session with
# 15 minutes of device time runs `tests psamask psa-bf16` (at most 660 s): the GPU tests, the
# PSAMask kernel against the torch backend, and the routes from the logits' factors, where the
# tensor-core kernels (16-bit only) are timed; benchmarks/psa.py writes its results after every
# case, so a run cut short keeps what it measured. Uses $PYTHON
# (default python3), which needs torch with CUDA and CuPy; the repository is put on
# PYTHONPATH, nothing is installed.
set -u
out=${1:?usage: gpu_session.sh OUTDIR [STEP ...]}
shift
steps=${*:-tests psa psa-bf16 psamask train train-fullres model cli tests-all}
py=${PYTHON:-python3}
logs=$out/logs
mkdir -p "$logs"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

step() {  # step NAME LIMIT_S COMMAND...: run, log, print the tail, pack what exists so far
    local name=$1 limit=$2 begin rc
    shift 2
    echo "== $name (limit ${limit} s): $*"
    begin=$(date +%s)
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    rc=$?
    echo "   exit $rc after $(($(date +%s) - begin)) s" | tee -a "$logs/$name.log"
    tail -n "${TAIL:-12}" "$logs/$name.log" | cut -c1-400
    tar -czf "$out/results.tar.gz" benchmarks/results
    tar -czf "$out/logs.tar.gz" -C "$out" logs
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  $py -c "import torch, cupy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__)"
} 2>&1 | tee "$logs/device.log"

for s in $steps; do
    case $s in
    tests) step tests 240 $py -m pytest -q -p no:cacheprovider -n 6 -m "not browser" \
        tests/test_ops_gpu.py tests/test_ops_aggregate.py tests/test_ops_aggregate_logits.py tests/test_ops_aggregate_logits_cupy.py tests/test_ops_psamask.py \
        tests/test_ops_library.py tests/test_models_psa_head.py tests/test_kernels_compile.py ;;
    psa) step psa 300 $py benchmarks/psa.py ;;
    psa-bf16) step psa-bf16 240 $py benchmarks/psa.py --dtype bfloat16 ;;
    psamask) step psamask 180 $py benchmarks/psamask.py ;;
    train) step train 100 $py benchmarks/train_speed.py --device cuda ;;
    train-fullres) step train-fullres 200 $py benchmarks/train_speed.py --device cuda --batch 2 \
        --amp none --amp bf16 --iterations 5 --warmup 2 --tag fullres-fused \
        --set 'data.crop_size=(1024,2048)' --set shrink_factor=1 --set fused=True
        step train-fullres-dense 120 $py benchmarks/train_speed.py --device cuda --batch 2 \
        --amp none --amp bf16 --iterations 5 --warmup 2 --tag fullres-dense \
        --set 'data.crop_size=(1024,2048)' --set shrink_factor=1 --set fused=False ;;
    model) step model 240 $py benchmarks/model.py --devices cuda ;;
    cli) work=$(mktemp -d)
        step cli-train 150 $py -m psanet_lite.cli train psanet_lite_context --work-dir "$work" --device cuda \
            --amp bf16 --workers 4 --no-progress
        step cli-eval 60 $py -m psanet_lite.cli eval --checkpoint "$work/final.pt" --device cuda --ms-flip ;;
    tests-all)  # the tests run the installed `psanet-lite` beside the interpreter: add a shim
        # (this machine is thrown away afterwards); test_packaging's `uv build` needs uv and
        # the network and fails here
        cmd=$(dirname "$($py -c 'import sys; print(sys.executable)')")/psanet-lite
        [ -e "$cmd" ] || printf '#!%s\nimport sys\nfrom psanet_lite.cli import main\nsys.exit(main())\n' \
            "$($py -c 'import sys; print(sys.executable)')" >"$cmd" && chmod +x "$cmd"
        step tests-all 300 $py -m pytest -q -p no:cacheprovider -n 12 -m "not browser" tests \
        --ignore=tests/test_book_build.py --ignore=tests/test_book_notebooks.py --ignore=tests/test_book_browser.py ;;
    *) echo "unknown step $s" ;;
    esac
done
