"""Config changes written as text, as ``--set KEY=VALUE`` gives them."""
import ast


def parse_overrides(pairs) -> dict:
    """['train.iterations=100', 'crop_size=(64,64)'] -> {'train.iterations': 100, 'crop_size': (64, 64)}.

    Values are read as Python literals, else kept as strings; the Config checks
    them when it is made (Config.replace).

    Example:
        >>> parse_overrides(["iterations=100", "psa_type=collect"])
        {'iterations': 100, 'psa_type': 'collect'}
    """
    overrides = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. train.iterations=100), got {pair!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = text
        overrides[key.strip()] = value
    return overrides
