"""A run killed with SIGKILL after a checkpoint and resumed ends bitwise where an
uninterrupted run ends (CPU, same thread count)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from psanet_lite.checkpoint import load_checkpoint
from psanet_lite.engine.run_log import read_log

PSANET_LITE = str(Path(sys.executable).with_name("psanet-lite"))  # the installed command
# dropout, photometric distortion, flips and a loader worker all stay on: every
# random stream has to come back exactly
SETTINGS = ["--set", "iterations=12", "--set", "batch_size=2", "--set", "batch_per_gpu=2",
            "--set", "checkpoint_interval=2", "--set", "photometric_distortion=True",
            "--no-eval", "--no-progress", "--workers", "1", "--log-interval", "1", "--keep-checkpoints", "0",
            "--device", "cpu"]  # exactness is promised on CPU (CUDA kernels may run in any order)


def _command(work_dir, *extra):
    return [PSANET_LITE, "train", "psanet_lite_context", "--work-dir", str(work_dir), *SETTINGS, *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(work_dir):
    return {r["iteration"]: r["loss"] for r in read_log(work_dir) if "loss" in r}


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = subprocess.Popen(_command(straight), env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    run = subprocess.Popen(_command(killed), env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "iter_0000004.pt").exists():
        assert run.poll() is None, "the run ended before its checkpoint at iteration 4"
        assert time.monotonic() < deadline, "no checkpoint at iteration 4 within 120 s"
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert not (killed / "final.pt").exists(), "the run finished before the kill: lengthen it"

    resumed = subprocess.run(_command(killed, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=180) == 0, reference.stderr.read().decode()

    ours, theirs = load_checkpoint(killed / "final.pt")["model"], load_checkpoint(straight / "final.pt")["model"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert _losses(killed) == _losses(straight)  # every iteration logged once, same values
