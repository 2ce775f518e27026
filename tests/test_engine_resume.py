"""A run killed with SIGKILL after a checkpoint and resumed ends bitwise where an
uninterrupted run ends (CPU, same thread count)."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from psanet_lite.checkpoint import load_checkpoint

LAUNCHER = "import sys\nfrom psanet_lite.cli import main\nsys.exit(main())\n"
# dropout, photometric distortion, flips and a loader worker all stay on: every
# random stream has to come back exactly
SETTINGS = ["--set", "iterations=12", "--set", "batch_size=2", "--set", "batch_per_gpu=2",
            "--set", "checkpoint_interval=2", "--set", "ratio_range=(1.0,1.0)",
            "--no-eval", "--no-progress", "--workers", "1", "--log-interval", "1", "--keep-checkpoints", "0"]


def _command(tmp_path, work_dir, *extra):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    return [sys.executable, str(launcher), "train", "psanet_lite_context", "--work-dir", str(work_dir),
            *SETTINGS, *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(work_dir):
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return {r["iteration"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = subprocess.Popen(_command(tmp_path, straight), env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    run = subprocess.Popen(_command(tmp_path, killed), env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "iter_0000004.pt").exists():
        assert run.poll() is None, "the run ended before its checkpoint at iteration 4"
        assert time.monotonic() < deadline, "no checkpoint at iteration 4 within 120 s"
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert not (killed / "final.pt").exists(), "the run finished before the kill: lengthen it"

    resumed = subprocess.run(_command(tmp_path, killed, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=180) == 0, reference.stderr.read().decode()

    ours, theirs = load_checkpoint(killed / "final.pt")["model"], load_checkpoint(straight / "final.pt")["model"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert _losses(killed) == _losses(straight)  # every iteration logged once, same values
