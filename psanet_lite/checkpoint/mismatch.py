"""Compare a state dict against the keys and shapes a model expects, and report every difference."""


class CheckpointMismatchError(ValueError):
    """A state dict does not fit the model.

    Attributes missing, unexpected, mismatched: lists of keys (mismatched holds
    (key, shape in the file, shape expected)), in the naming of the file's format.
    """

    def __init__(self, what, missing, unexpected, mismatched, limit=20):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"{what} does not fit the model:"]
        for title, items in (("missing", missing), ("unexpected", unexpected)):
            if items:
                shown = ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
                lines.append(f"  {len(items)} {title} key(s): {shown}")
        if mismatched:
            shown = "; ".join(f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched[:limit])
            more = f"; ... ({len(mismatched) - limit} more)" if len(mismatched) > limit else ""
            lines.append(f"  {len(mismatched)} shape mismatch(es): {shown}{more}")
        super().__init__("\n".join(lines))


def check_state_dict(state, expected, what="checkpoint"):
    """Raise CheckpointMismatchError unless `state` has exactly the keys and shapes of `expected`.

    Args:
        state: {key: tensor} read from a file.
        expected: {key: shape} the model needs, in the same naming.
        what: how to name the source in the error message.

    >>> import torch
    >>> check_state_dict({"w": torch.zeros(2)}, {"w": (2,)})
    """
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(
        (k, tuple(state[k].shape), tuple(shape))
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != tuple(shape)
    )
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(what, missing, unexpected, mismatched)
