"""Where a run's numbers go: a JSON-lines file and TensorBoard.

work_dir/log.jsonl holds one JSON object per logged step, e.g.
    {"iteration": 10, "loss": 1.23, "lr": 0.0099, "images_per_s": 41.0, "time": 1712345678.9}
and evaluation records ({"iteration": 500, "mIoU": 0.61, ...}); TensorBoard
event files go to work_dir/tensorboard/. Only the main process writes.
"""
import json
import math
import os
import time
from pathlib import Path


class RunLog:
    """Append records to work_dir/log.jsonl and TensorBoard scalars.

    On resume from iteration ``start``, records after ``start`` (written by the
    interrupted run past its last checkpoint) are dropped from the JSON-lines
    file, so each iteration appears once; a last line cut short by a kill is
    dropped too, and the file is rewritten atomically (a second kill leaves the
    old one). TensorBoard gets a new event file and shows the overlap; its
    purge_step hides the stale points.

    Example:
        >>> log = RunLog("runs/demo")
        >>> log.write(10, {"loss": 1.2, "lr": 0.01})
        >>> log.close()
        >>> [(r["iteration"], r["loss"], "time" in r) for r in read_log("runs/demo")]
        [(10, 1.2, True)]
    """

    def __init__(self, work_dir, start: int = 0):
        self.path = Path(work_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(work_dir) if r.get("iteration", 0) <= start] if start > 0 else []
        _replace_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))
        # imported here: tensorboard takes a second to import and only training needs it
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(work_dir) / "tensorboard"), purge_step=start or None)

    def write(self, iteration: int, values: dict, group: str = "train") -> None:
        """Log numbers (floats; lists go to the JSON file only) for ``iteration``."""
        record = {"iteration": iteration, **{k: json_safe(v) for k, v in values.items()}, "time": time.time()}
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{group}/{key}", value, iteration)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def json_safe(value):
    """``value`` with NaN and infinities replaced by None (JSON has no NaN),
    through lists and dicts.

    Example:
        >>> json_safe({"IoU": [0.5, float("nan")]})
        {'IoU': [0.5, None]}
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_log(work_dir) -> list[dict]:
    """The records of work_dir/log.jsonl, in order ([] without a log).

    A last line cut short (a run killed while appending) is left out; a bad
    line before it is an error naming the file and the line.

    Example:
        >>> losses = [r["loss"] for r in read_log("runs/demo") if "loss" in r]  # doctest: +SKIP
    """
    path = Path(work_dir) / "log.jsonl"
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path} line {number} is not a JSON record: {line[:80]!r}") from None
    return records


def _replace_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_text(text)
    os.replace(temporary, path)
