"""Run a command (the book build) while the runs its chapters train are trained ahead.

    python book/tools/train_ahead.py jupyter-book build book --warningiserror --keep-going

`make book` builds the site this way. Chapters 6 to 8 and 10 load the book's runs
(psanet_lite.book.BOOK_VARIANTS, each on the context and the marker task), and from an
empty cache the first chapter that asks trains each one. Executed in order, the chapters
would train them one chapter at a time and leave a CPU core idle through every chapter
that trains nothing. Here a background process starts them all at once with
psanet_lite.book.train_runs (two side by side on a CPU, one torch thread each) while
jupyter-book executes the chapters, and a chapter that asks for a run still in training
waits for it (each run's lock) instead of training it again. The notebooks get one torch
thread each (OMP_NUM_THREADS=1), so that two trainings and a notebook do not ask two
cores for more threads than they have.

When the command ends, whatever is still training is stopped (the chapters that needed
it have ended; what it leaves is removed by the next training) and the command's exit
status is this script's. A failed training does not fail the build: the chapter that
needs the run trains it itself, and fails if that fails.
"""
import os
import signal
import subprocess
import sys

# Trains what the cache lacks of the book's runs; exits at once when it holds them all.
TRAIN = "from psanet_lite.book import BOOK_VARIANTS, train_runs; train_runs(BOOK_VARIANTS)"


def main(argv) -> int:
    if not argv:
        print("usage: python book/tools/train_ahead.py COMMAND [ARGS...]  (e.g. jupyter-book build book)",
              file=sys.stderr)
        return 2
    # its own process group, so that stopping it stops the training processes it started
    trainer = subprocess.Popen([sys.executable, "-c", TRAIN], start_new_session=True)
    try:
        return subprocess.run(argv, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGTERM)
        trainer.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
