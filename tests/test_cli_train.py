"""``psanet-lite train``: options, overrides and a clean stop on Ctrl-C."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psanet_lite.cli import build_parser, main
from psanet_lite.cli.train import parse_overrides


def test_overrides_are_python_literals_or_strings():
    assert parse_overrides(["train.iterations=100", "data.crop_size=(64, 64)", "psa_type=collect",
                            "model.fcn_channels=None"]) == {
        "train.iterations": 100, "data.crop_size": (64, 64), "psa_type": "collect", "model.fcn_channels": None}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["iterations"])


def test_parser_defaults_and_resume_forms():
    parser = build_parser()
    args = parser.parse_args(["train", "psanet_lite_context", "--work-dir", "w"])
    assert args.resume is None and args.amp == "none" and args.func.__module__ == "psanet_lite.cli.train"
    assert parser.parse_args(["train", "p", "--work-dir", "w", "--resume"]).resume == "auto"
    assert parser.parse_args(["train", "p", "--work-dir", "w", "--resume", "c.pt"]).resume == "c.pt"


def test_unknown_preset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'no_such_preset'"):
        main(["train", "no_such_preset", "--work-dir", str(tmp_path)])


def test_ctrl_c_names_the_last_checkpoint(tmp_path):
    work_dir = tmp_path / "run"
    run = subprocess.Popen(
        [str(Path(sys.executable).with_name("psanet-lite")), "train", "psanet_lite_context", "--work-dir", str(work_dir),
         "--set", "iterations=1000", "--set", "batch_size=2", "--set", "batch_per_gpu=2",
         "--set", "checkpoint_interval=2", "--no-eval", "--no-progress", "--workers", "0"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As in a terminal: a shell starts background jobs with SIGINT ignored, and the child
        # would inherit that when the tests themselves run in the background.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((work_dir / "checkpoints").glob("iter_*.pt")):
        assert run.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=300)  # generous: a loaded 2-core CI machine is slow
    assert run.returncode == 130
    assert "interrupted at iteration" in stderr
    assert "iter_0000" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
