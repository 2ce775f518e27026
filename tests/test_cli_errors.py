"""Bad input to every command: exit code 2, one line on stderr naming the problem
(``psanet-lite <command>: ...``), no traceback, and no file written, changed or
removed. Most cases run in-process (``main([...])``); a few go through a real
process to check the exit code and stderr end to end."""
import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from psanet_lite.build import build_model
from psanet_lite.checkpoint import save_checkpoint
from psanet_lite.cli import main
from psanet_lite.configs import get_config

CKPT = "model.pt"  # a psanet-lite checkpoint of the context model (random weights)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A folder of good and bad inputs; every case runs with it as the working folder."""
    root = tmp_path_factory.mktemp("inputs")
    config = get_config("psanet_lite_context")
    torch.manual_seed(0)
    save_checkpoint(root / CKPT, build_model(config), config)
    fcn = config.replace(decode_head="fcn")
    save_checkpoint(root / "fcn.pt", build_model(fcn), fcn)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for name in ("scene.png", "a/x.png", "b/x.png"):
        (root / name).parent.mkdir(exist_ok=True)
        picture.save(root / name)
    (root / "scene_collect_1_1.png").write_bytes((root / CKPT).read_bytes())  # a checkpoint, oddly named
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (root / "empty.pt").write_bytes(b"")
    (root / "text.pt").write_text("weights: none\n")
    whole = (root / CKPT).read_bytes()
    (root / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    torch.save({"conv.weight": torch.ones(2)}, root / "foreign.pt")
    torch.save({"state_dict": argparse.Namespace(a=1)}, root / "pickled.pt")
    (root / "folder.pt").mkdir()
    (root / "afile").write_text("a file, not a folder\n")
    (root / "results").mkdir()
    (root / "broken_run" / "checkpoints").mkdir(parents=True)
    (root / "broken_run" / "checkpoints" / "iter_0000002.pt").write_text("cut short")
    return root


def _snapshot(root):
    """Every file and folder under root, with a digest of each file's bytes and its mode."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            state[str(path)] = "folder"
        else:
            state[str(path)] = (hashlib.sha1(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return state


TRAIN = ["train", "psanet_lite_context", "--work-dir", "w"]
EVAL = ["eval", "--checkpoint", CKPT]
PREDICT = ["predict", "scene.png", "--checkpoint", CKPT, "--out-dir", "out"]
ATTENTION = ["attention", "scene.png", "--checkpoint", CKPT, "--out-dir", "out"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

CASES = [
    # train: presets, --set values, options, work dirs and resuming
    (["train", "nope", "--work-dir", "w"], "unknown preset 'nope'"),
    (TRAIN + ["--set", "batch_size=0"], "train.batch_size must be >= 1, got 0"),
    (TRAIN + ["--set", "batch_size=-4"], "train.batch_size must be >= 1, got -4"),
    (TRAIN + ["--set", "iterations=2.5"], "train.iterations must be an integer, got 2.5"),
    (TRAIN + ["--set", "lr=-1"], "train.lr must be > 0, got -1.0"),
    (TRAIN + ["--set", "lr=nan"], "train.lr must be a finite number, got 'nan'"),
    (TRAIN + ["--set", "checkpoint_interval=0"], "train.checkpoint_interval must be >= 1, got 0"),
    (TRAIN + ["--set", "eval_interval=-1"], "train.eval_interval must be >= 0, got -1"),
    (TRAIN + ["--set", "momentum=1.5"], "train.momentum must be < 1, got 1.5"),
    (TRAIN + ["--set", "optimizer=adam"], "train.optimizer must be one of ('sgd',), got 'adam'"),
    (TRAIN + ["--set", "batch_size=3"], "must be a multiple of train.batch_per_gpu"),
    (TRAIN + ["--set", "load_from=missing.pt"], "model.load_from: no checkpoint file at 'missing.pt'"),
    (TRAIN + ["--set", "sync_bn=1"], "train.sync_bn must be True or False, got 1"),
    (TRAIN + ["--set", "iterations"], "--set expects KEY=VALUE"),
    (TRAIN + ["--set", "nosuchfield=1"], "unknown config field 'nosuchfield'"),
    (TRAIN + ["--set", "model.nope=1"], "model has no field 'nope'"),
    (TRAIN + ["--set", "crop_size=(64,64)"], "exists in ['data', 'test']"),
    (TRAIN + ["--set", "data.crop_size=(64,)"], "data.crop_size must be a tuple of 2 integers"),
    (TRAIN + ["--set", "data.crop_size=(0,64)"], "data.crop_size must be >= 1, got (0, 64)"),
    (TRAIN + ["--set", "psa_type=sideways"], "model.psa_type must be one of"),
    (TRAIN + ["--set", "channels=0"], "model.channels must be >= 1, got 0"),
    (TRAIN + ["--set", "flip_prob=2"], "data.flip_prob must be <= 1, got 2.0"),
    (TRAIN + ["--iterations", "0"], "train.iterations must be >= 1, got 0"),
    (TRAIN + ["--iterations", "ten"], "argument --iterations: invalid int value: 'ten'"),
    (TRAIN + ["--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    (TRAIN + ["--log-interval", "0"], "log_interval must be an integer >= 1, got 0"),
    (TRAIN + ["--workers", "-1"], "workers must be an integer >= 0, got -1"),
    (["train", "psanet_lite_context"], "the following arguments are required: --work-dir"),
    (["train", "psanet_lite_context", "--work-dir", "afile"], "work dir afile is a file, not a folder"),
    (TRAIN + ["--resume"], "no training checkpoint in w/checkpoints to resume from"),
    (TRAIN + ["--resume", "missing.pt"], "--resume: no checkpoint file at missing.pt"),
    (TRAIN + ["--resume", CKPT], f"{CKPT} is a model checkpoint, not a training checkpoint"),
    (["train", "psanet_lite_context", "--work-dir", "broken_run", "--resume"],
     "broken_run/checkpoints/iter_0000002.pt (broken_run/checkpoints/iter_0000002.pt is not a torch checkpoint"),
    (TRAIN + ["--data-root", "somewhere"], "the context dataset is generated; it takes no data root"),
    pytest.param(TRAIN + ["--device", "cuda"], "torch sees no CUDA device", marks=NO_CUDA),
    # eval: checkpoints of every wrong kind, outputs, options
    (["eval", "--checkpoint", "missing.pt"], "no checkpoint file at 'missing.pt'"),
    (["eval", "--checkpoint", "empty.pt"], "empty.pt is empty (0 bytes), not a checkpoint"),
    (["eval", "--checkpoint", "text.pt"], "text.pt is not a torch checkpoint"),
    (["eval", "--checkpoint", "truncated.pt"], "cannot read checkpoint truncated.pt"),
    (["eval", "--checkpoint", "folder.pt"], "folder.pt is a folder, not a checkpoint file"),
    (["eval", "--checkpoint", "foreign.pt"], "foreign.pt carries no config"),
    (["eval", "--checkpoint", "foreign.pt", "--config", "psanet_lite_context"], "does not fit the model"),
    (["eval", "--checkpoint", "pickled.pt"], "pickled.pt holds Python objects beyond tensors"),
    (EVAL + ["--config", "psanet_r51"], "unknown preset 'psanet_r51'"),
    (EVAL + ["--set", "channels=0"], "model.channels must be >= 1, got 0"),
    (EVAL + ["--set", "num_classes=5"], "does not fit the model"),
    (EVAL + ["--out", CKPT], f"{CKPT} would be written over the input {CKPT}"),
    (EVAL + ["--out", "afile/metrics.json"], "afile is a file, not a folder"),
    (EVAL + ["--out", "results"], "output results is a folder"),
    (EVAL + ["--split", "dev"], "argument --split: invalid choice: 'dev'"),
    (EVAL + ["--data-root", "somewhere"], "the context dataset is generated; it takes no data root"),
    pytest.param(EVAL + ["--device", "cuda"], "torch sees no CUDA device", marks=NO_CUDA),
    # predict: outputs over inputs or each other, bad images, options
    (["predict", "scene.png", "--checkpoint", CKPT, "--out-dir", "."], "scene.png would be written over its own input"),
    (["predict", "a/x.png", "b/x.png", "--checkpoint", CKPT], "a/x.png and b/x.png would both be written to"),
    (PREDICT + ["--alpha", "1.5"], "argument --alpha: expected a number from 0 to 1, got '1.5'"),
    (PREDICT + ["--alpha", "half"], "argument --alpha: expected a number from 0 to 1, got 'half'"),
    (PREDICT[:1] + ["corrupt.png"] + PREDICT[2:], "1 of 1 images failed: cannot read image corrupt.png"),
    (PREDICT[:1] + ["nothing.png"] + PREDICT[2:], "1 of 1 images failed: image nothing.png does not exist"),
    (["predict", "scene.png", "--checkpoint", "truncated.pt"], "cannot read checkpoint truncated.pt"),
    (["predict", "scene.png", "--checkpoint", CKPT, "--out-dir", "afile"], "afile is a file, not a folder"),
    (["predict", "--checkpoint", CKPT], "the following arguments are required: images"),
    # attention: pixels, images, heads
    (ATTENTION + ["--pixel", "64,0"], "--pixel 64,0 lies outside the 64x64 (HxW) image"),
    (ATTENTION + ["--pixel=-1,5"], "--pixel -1,5 lies outside the 64x64 (HxW) image"),
    (ATTENTION + ["--pixel", "middle"], "--pixel expects y,x (two integers), got 'middle'"),
    (ATTENTION, "the following arguments are required: --pixel"),
    (["attention", "corrupt.png", "--pixel", "1,1", "--checkpoint", CKPT], "cannot read image corrupt.png"),
    (["attention", "scene.png", "--pixel", "1,1", "--checkpoint", "scene_collect_1_1.png", "--out-dir", "."],
     "scene_collect_1_1.png would be written over the input scene_collect_1_1.png"),
    (ATTENTION + ["--pixel", "1,1", "--set", "channels=0"], "model.channels must be >= 1, got 0"),
    (["attention", "scene.png", "--pixel", "1,1", "--checkpoint", "fcn.pt", "--out-dir", "out"], "has no attention"),
    (["attention", "scene.png", "--pixel", "1,1", "--checkpoint", "empty.pt"], "empty.pt is empty"),
    # info and the command itself
    (["info", "psanet_r18"], "unknown preset 'psanet_r18'"),
    (["info"], "give a preset name (psanet-lite info --list shows them)"),
    (["info", "psanet_lite_context", "--size", "0x64"], "expected HxW with positive sides"),
    (["info", "psanet_lite_context", "--size", "big"], "expected HxW with positive sides"),
    (["fly"], "argument COMMAND: invalid choice: 'fly'"),
]


def _case_id(case):
    argv = case.values[0] if hasattr(case, "values") else case[0]
    return " ".join(argv)[:60]


@pytest.mark.parametrize("argv, expected", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(argv, expected, tree, monkeypatch, capsys):
    monkeypatch.chdir(tree)
    before = _snapshot(tree)
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse
        code = exit.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"psanet-lite {argv[0]}: " if argv[0] != "fly" else "psanet-lite: ")
    assert expected in lines[0]
    assert "Traceback" not in err + out
    assert _snapshot(tree) == before, "a failed command changed files"


@pytest.mark.parametrize("argv, expected", [
    (["-m", "psanet_lite", "train", "nope", "--work-dir", "w"], "psanet-lite train: unknown preset 'nope'"),
    (["-m", "psanet_lite", "eval", "--checkpoint", "empty.pt"], "psanet-lite eval: empty.pt is empty"),
    (["-m", "psanet_lite.cli", "predict", "corrupt.png", "--checkpoint", CKPT, "--out-dir", "out"],
     "psanet-lite predict: 1 of 1 images failed: cannot read image corrupt.png"),
])
def test_bad_input_end_to_end_in_a_process(argv, expected, tree):
    before = _snapshot(tree)
    done = subprocess.run([sys.executable, *argv], cwd=tree, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert _snapshot(tree) == before


def test_debug_shows_the_traceback(tree, monkeypatch):
    monkeypatch.chdir(tree)
    with pytest.raises(ValueError, match="empty.pt is empty"):
        main(["eval", "--checkpoint", "empty.pt", "--debug"])


def test_help_loads_no_torch():
    # --help must answer at once: torch (seconds to import) loads only when a command runs
    code = "import sys; from psanet_lite.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.stdout.strip() == "False", done.stderr
