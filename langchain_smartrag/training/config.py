"""What the SFT and PPO configs share: the checks that a YAML file and a flag both meet before any model loads, and
each field's docstring, which is also its flag's `--help`."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
import textwrap
from collections.abc import Iterable
from typing import Any


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


def require_numbers(config: Any, names: Iterable[str], *, above: float | None = None, at_least: float | None = None,
                    at_most: float | None = None, below: float | None = None) -> None:
    """Each named field must be a number (an int or a float, not NaN) within the bounds given, or None where its type
    allows it (`target_kl: float | None`): `learning_rate must be > 0, got -1.0`."""
    optional = {f.name for f in dataclasses.fields(config) if "None" in str(f.type)}
    rule = " and ".join(f"{sign} {bound:g}" for sign, bound in ((">", above), (">=", at_least), ("<=", at_most),
                                                                  ("<", below)) if bound is not None)
    for name in names:
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if isinstance(value, str):
            raise ValueError(f"{name} must be a number, got the text {value!r} (YAML reads 1e-5 as text: write 1.0e-5)")
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if ((above is not None and not value > above) or (at_least is not None and not value >= at_least)
                or (at_most is not None and not value <= at_most) or (below is not None and not value < below)):
            raise ValueError(f"{name} must be {rule}, got {value!r}")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string right under it in the class body), read once from the class's
    source with `ast`, its whitespace collapsed to one line."""
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    docs = {}
    for node, after in itertools.pairwise(tree.body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs
