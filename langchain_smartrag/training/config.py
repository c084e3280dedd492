"""What the SFT and PPO configs share: the checks that a YAML file and a flag both meet before any model loads, and
each field's docstring, which is also its flag's `--help`."""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import inspect
import itertools
import math
import textwrap
import types
import typing
from collections.abc import Iterable
from typing import Any, cast


def require_counts(config: Any, names: Iterable[str], least: int = 1) -> None:
    """Each named field must be a whole number >= `least`, or None where that is its default (`max_steps`): a count of
    0 or less would train for nothing, or for everything, or divide by zero once the model is loaded."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name in names:
        value = getattr(config, name)
        if value is None and defaults[name] is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            none = " (or none)" if defaults[name] is None else ""
            raise ValueError(f"{name} must be a whole number >= {least}{none}, not {value!r}")


def require_numbers(
    config: Any,
    names: Iterable[str],
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> None:
    """Each named field must be a number (an int or a float, not NaN) within the bounds given, or None where its type
    allows it (`target_kl: float | None`): `learning_rate must be > 0, got -1.0`."""
    optional = {f.name for f in dataclasses.fields(config) if "None" in str(f.type)}
    rule = " and ".join(
        f"{sign} {bound:g}"
        for sign, bound in ((">", above), (">=", at_least), ("<=", at_most), ("<", below))
        if bound is not None
    )
    for name in names:
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if isinstance(value, str):
            raise ValueError(f"{name} must be a number, got the text {value!r} (YAML reads 1e-5 as text: write 1.0e-5)")
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if (
            (above is not None and not value > above)
            or (at_least is not None and not value >= at_least)
            or (at_most is not None and not value <= at_most)
            or (below is not None and not value < below)
        ):
            raise ValueError(f"{name} must be {rule}, got {value!r}")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string right under it in the class body), read once from the class's
    source with `ast`, its whitespace collapsed to one line."""
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    docs = {}
    for node, after in itertools.pairwise(cast(ast.ClassDef, tree).body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def accepts(hint: Any, value: Any) -> bool:
    """Whether `value` (as YAML reads it) is of the type `hint` a dataclass field declares; kinds it cannot judge
    (a class of the library's own) are accepted and left to the class's own checks."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(accepts(arg, value) for arg in args)
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is list or origin is list:
        return isinstance(value, list) and all(accepts(args[0], v) for v in value) if args else isinstance(value, list)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {member.value for member in hint}
    return True


def describe(hint: Any) -> str:
    """A type as the YAML a user writes: `bool` -> "true or false", `str | None` -> "text or none"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(describe(arg) for arg in args))
    if origin is typing.Literal:
        return " or ".join(map(repr, args))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in hint)
    names = {
        type(None): "none",
        None: "none",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text",
        dict: "a mapping",
        list: "a list",
    }
    if origin in (list, dict):
        return names[origin]
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def read_as(hint: Any, value: Any) -> Any:
    """`value` as the field `hint` takes it: a number YAML read as text (`1e-8`, which YAML 1.1 takes for a string)
    becomes a float where the field takes a number and not text; anything else unchanged."""
    if isinstance(value, str) and not accepts(hint, value) and accepts(hint, 1.5):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value
