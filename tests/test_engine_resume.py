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


def test_resume_skips_a_damaged_newest_checkpoint_a_cut_log_line_and_temp_files(tmp_path, monkeypatch, capsys):
    from psanet_lite import data
    from psanet_lite.configs import get_config
    from psanet_lite.engine.trainer import TrainOptions, train

    monkeypatch.setitem(data.CONTEXT_LENGTHS, "train", 8)
    config = get_config("psanet_lite_context", iterations=4, batch_size=2, batch_per_gpu=2, checkpoint_interval=2)
    options = TrainOptions(workers=0, progress=False, evaluate=False, log_interval=1, keep_checkpoints=0,
                           device="cpu")
    train(config, tmp_path / "straight", options)

    damaged = tmp_path / "damaged"
    train(config, damaged, options)
    newest = damaged / "checkpoints" / "iter_0000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    with (damaged / "log.jsonl").open("a") as log:
        log.write('{"iteration": 5, "lo')  # a kill during an append
    (damaged / "checkpoints" / ".tmp-abc123iter_0000006.pt").write_bytes(b"PK half")  # a kill during a save
    capsys.readouterr()

    train(config, damaged, TrainOptions(**{**vars(options), "resume": "auto"}))
    out = capsys.readouterr().out
    assert f"skipping unreadable checkpoint {newest} (cannot read checkpoint" in out
    assert f"resuming from {damaged / 'checkpoints' / 'iter_0000002.pt'} at iteration 2" in out
    assert not list((damaged / "checkpoints").glob(".tmp-*"))
    assert _losses(damaged) == _losses(tmp_path / "straight")  # iterations 1-4 once each, same values
    ours = load_checkpoint(damaged / "final.pt")["model"]
    theirs = load_checkpoint(tmp_path / "straight" / "final.pt")["model"]
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert oct(newest.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # rewritten, mode as any file


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
