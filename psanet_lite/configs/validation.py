"""Check every field of a config dataclass against its annotation and its range.

The annotations of psanet_lite.configs.schema say what a field holds (``int``,
``float``, ``bool``, ``str``, ``Literal[...]`` choices, ``tuple[int, int]``,
``tuple[float, ...]``, ``X | None``); a field made with ``limited(default,
ge=..., gt=..., le=..., lt=...)`` also carries its range. ``check_fields`` runs
when a config is made (in ``__post_init__``), so a bad value is refused with a
message naming the field, what was expected and what was given, before any
work starts. Lists become tuples (JSON has no tuples) and ints given for float
fields become floats.
"""
import dataclasses
import math
import operator
import types
import typing

_COMPARISONS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"),
                "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def limited(default, **bounds):
    """A dataclass field with ``default`` whose numbers must satisfy ``bounds``
    (ge, gt, le, lt; for a tuple, every element).

    Example:
        >>> limited(8, ge=1).metadata["bounds"]
        {'ge': 1}
    """
    unknown = set(bounds) - set(_COMPARISONS)
    if unknown:
        raise TypeError(f"bounds may be {sorted(_COMPARISONS)}, got {sorted(unknown)}")
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def check_fields(instance, section: str) -> None:
    """Check (and normalise in place) every field of the dataclass ``instance``.

    Raises ValueError naming ``section.field``, the expected type or range and
    the value given.

    Example:
        >>> from psanet_lite.configs import TrainConfig
        >>> TrainConfig(iterations=2.5)
        Traceback (most recent call last):
        ...
        ValueError: train.iterations must be an integer, got 2.5
    """
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        name = f"{section}.{field.name}"
        value = _checked(name, getattr(instance, field.name), hints[field.name])
        _check_bounds(name, value, field.metadata.get("bounds", {}))
        setattr(instance, field.name, value)


def _checked(name, value, kind):
    """``value`` as the annotation ``kind`` wants it, or ValueError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        return _checked(name, value, inner[0]) if len(inner) == 1 else value
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{name} must be one of {args}, got {value!r}")
        return value
    if origin is tuple:
        return _checked_tuple(name, value, args)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if kind in (bool, str) and not isinstance(value, kind):
        raise ValueError(f"{name} must be {'True or False' if kind is bool else 'a string'}, got {value!r}")
    if dataclasses.is_dataclass(kind) and not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}")
    return value


def _checked_tuple(name, value, args):
    """tuple[int, int] (that many elements) or tuple[float, ...] (one or more)."""
    repeated = len(args) == 2 and args[1] is Ellipsis
    expected = (f"a tuple of {_type_name(args[0])}s" if repeated
                else f"a tuple of {len(args)} {_type_name(args[0])}s")
    if not isinstance(value, (tuple, list)) or (len(value) != len(args) if not repeated else not value):
        raise ValueError(f"{name} must be {expected}, e.g. {_example(args)}, got {value!r}")
    kinds = [args[0]] * len(value) if repeated else args
    try:
        return tuple(_checked(name, item, kind) for item, kind in zip(value, kinds))
    except ValueError:
        raise ValueError(f"{name} must be {expected}, e.g. {_example(args)}, got {value!r}") from None


def _check_bounds(name, value, bounds):
    for item in value if isinstance(value, tuple) else (value,):
        for key, limit in bounds.items():
            compare, symbol = _COMPARISONS[key]
            if item is not None and not compare(item, limit):
                raise ValueError(f"{name} must be {symbol} {limit}, got {value!r}")


def _type_name(kind):
    return {int: "integer", float: "number"}.get(kind, getattr(kind, "__name__", str(kind)))


def _example(args):
    sample = {int: "64", float: "0.5"}.get(args[0], "...")
    count = 2 if len(args) == 2 and args[1] is Ellipsis else len(args)
    return "(" + ",".join([sample] * count) + ")"
