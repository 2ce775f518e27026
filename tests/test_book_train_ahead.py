"""book/tools/train_ahead.py: the command's exit status is the script's, the notebooks get one
torch thread, and the trainer beside it is stopped, with its children, when the command ends."""
import os
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "tools"))
import train_ahead  # noqa: E402  (book/tools is not a package)


def _gone(pid, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_trainer_and_its_children_stop_when_the_command_ends(tmp_path, monkeypatch):
    # A stand-in trainer that starts a child (as train_runs starts its pool) and writes both pids.
    pids = tmp_path / "pids"
    monkeypatch.setattr(train_ahead, "TRAIN", (
        "import subprocess, sys, os, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(60)"))
    waits_for_them = f"import pathlib, time\np = pathlib.Path({str(pids)!r})\n" \
                     "while not (p.exists() and p.read_text()): time.sleep(0.05)\nraise SystemExit(3)"
    command = [sys.executable, "-c", waits_for_them]
    assert train_ahead.main(command) == 3
    trainer, child = map(int, pids.read_text().split())
    assert _gone(trainer) and _gone(child)


def test_the_command_gets_one_torch_thread_and_its_status_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(train_ahead, "TRAIN", "pass")  # nothing to train
    out = tmp_path / "threads"
    assert train_ahead.main([sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write("
                                                   "os.environ['OMP_NUM_THREADS'])"]) == 0
    assert out.read_text() == "1"


def test_without_a_command_it_prints_its_usage_and_exits_2():
    result = subprocess.run([sys.executable, str(BOOK / "tools" / "train_ahead.py")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("usage: python book/tools/train_ahead.py COMMAND")
