"""Checks the SFT and PPO configs share, so that a YAML file and a flag meet the same refusal."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any


def require_counts(config: Any, names: Iterable[str]) -> None:
    """Each named field must be a whole number >= 1, or None where that is its default (`max_steps`): a count of 0 or
    less would train for nothing, or for everything, or divide by zero once the model is loaded."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name in names:
        value = getattr(config, name)
        if value is None and defaults[name] is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            none = " (or none)" if defaults[name] is None else ""
            raise ValueError(f"{name} must be a whole number >= 1{none}, not {value!r}")
