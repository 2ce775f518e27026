"""torchrun with 2 gloo processes follows the same loss curve as 1 process with the same
global batch (SyncBN on, dropout and the auxiliary head off: their random masks cannot
match across a different split of the batch)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from psanet_lite.engine.run_log import read_log

PSANET_LITE = str(Path(sys.executable).with_name("psanet-lite"))  # the installed command
COMMON = ["--set", "iterations=3", "--set", "batch_size=4", "--set", "sync_bn=True",
          "--set", "dropout=0.0", "--set", "aux_head=False",
          "--no-eval", "--no-progress", "--workers", "0", "--log-interval", "1", "--device", "cpu"]  # gloo


def _losses(work_dir):
    return [r["loss"] for r in read_log(work_dir) if "loss" in r]


def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = [PSANET_LITE, "train", "psanet_lite_context"]
    one = subprocess.run([*train, "--work-dir", str(tmp_path / "one"),
                          "--set", "batch_per_gpu=4", *COMMON],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *train, "--work-dir", str(tmp_path / "two"), "--set", "batch_per_gpu=2", *COMMON],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr

    single, double = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(single) == len(double) == 3
    assert double == pytest.approx(single, rel=1e-4)
    assert single[0] != single[-1]  # the weights moved: the later points compare updated models
