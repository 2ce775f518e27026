"""``psanet-lite train``: options, overrides and a clean stop on Ctrl-C."""
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psanet_lite.cli import build_parser, main
from psanet_lite.configs import parse_overrides
from psanet_lite.engine.options import TrainOptions


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
    # every default is TrainOptions' own
    options = TrainOptions()
    assert (args.seed, args.workers, args.log_interval, args.keep_checkpoints) == (
        options.seed, options.workers, options.log_interval, options.keep_checkpoints)
    assert parser.parse_args(["train", "p", "--work-dir", "w", "--resume"]).resume == "auto"
    assert parser.parse_args(["train", "p", "--work-dir", "w", "--resume", "c.pt"]).resume == "c.pt"


def test_unknown_preset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "no_such_preset", "--work-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("psanet-lite train: unknown preset 'no_such_preset'")
    with pytest.raises(ValueError, match="unknown preset 'no_such_preset'"):  # --debug: the exception itself
        main(["train", "no_such_preset", "--work-dir", str(tmp_path), "--debug"])


def _start(command):
    return subprocess.Popen(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a shell starts background jobs with SIGINT ignored, and the child
        # would inherit that when the tests themselves run in the background.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_after(run, ready, what):
    deadline = time.monotonic() + 120
    while not ready():
        assert run.poll() is None and time.monotonic() < deadline, f"no {what} appeared"
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    return run.communicate(timeout=300)  # generous: a loaded 2-core CI machine is slow


def test_ctrl_c_prints_the_users_command_with_resume_which_works(tmp_path):
    work_dir = tmp_path / "run"
    arguments = ["train", "psanet_lite_context", "--work-dir", str(work_dir), "--iterations", "1000",
                 "--set", "batch_size=2", "--set", "batch_per_gpu=2", "--set", "checkpoint_interval=2",
                 "--no-eval", "--no-progress", "--workers", "0"]
    run = _start([str(Path(sys.executable).with_name("psanet-lite")), *arguments])
    _, stderr = _interrupt_after(run, lambda: list((work_dir / "checkpoints").glob("iter_*.pt")), "checkpoint")
    assert run.returncode == 130
    assert "interrupted at iteration" in stderr and "iter_0000" in stderr
    assert "Traceback" not in stderr
    printed = stderr.split("Continue with: ")[1].strip()
    assert printed == shlex.join(["psanet-lite", *arguments, "--resume"])  # --iterations and --set kept

    # the printed command, as printed, resumes (and is stopped again once it has)
    command = shlex.split(printed)
    resumed = _start([str(Path(sys.executable).with_name(command[0])), *command[1:]])
    stdout, stderr = _interrupt_after(resumed, lambda: len(list((work_dir / "checkpoints").glob("iter_*.pt"))) > 1,
                                      "new checkpoint")
    assert resumed.returncode == 130, stderr
    assert "resuming from" in stdout and "Traceback" not in stderr
