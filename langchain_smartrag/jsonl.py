"""JSON Lines files, plain or gzip-compressed, read with errors that name the line."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""A `\\ud800`-style escape in a line: only then can its JSON hold a lone surrogate (UTF-8 never decodes to one)."""

SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_lone_surrogates(value: Any, where: str, field: str = "") -> None:
    """Raise naming the field if `value` holds a lone surrogate (half of an escaped pair, which no text file can
    hold: writing it out would fail, or leave a file cut short)."""
    if isinstance(value, str):
        lone = SURROGATE.search(value)
        if lone:
            raise ValueError(
                f"{where}: {field or 'a value'} holds a lone surrogate ({lone.group()!a}), half of "
                "an escaped character pair, which is not text: fix or drop the row"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key, where, field or "a key")
            _refuse_lone_surrogates(item, where, field or repr(key))
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item, where, field)


def read_jsonl(path: str | Path, *, allow_blank: bool = True) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) from a JSON Lines file, gzip-compressed if it ends in `.gz`.

    A line that is not a JSON object, or not UTF-8, or holds a lone surrogate (`"\\ud800"` escaped alone), or a blank
    line between rows (unless `allow_blank`; blank lines at the end are fine) raises a `ValueError` that names the
    file and line; so does a gzip file cut short, or one that is not gzip at all.
    """
    path = Path(path)
    blank = 0  # the first blank line since the last row
    with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as f:
        try:
            for number, raw in enumerate(f, 1):
                line = raw.decode("utf-8")
                if not line.strip():
                    blank = blank or number
                    continue
                if blank and not allow_blank:
                    raise ValueError(f"{path}:{blank}: empty line")
                blank = 0
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from error
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                if ESCAPED_SURROGATE.search(line):
                    _refuse_lone_surrogates(row, f"{path}:{number}")
                yield number, row
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}:{number}: not UTF-8 text ({error.reason}): save it as UTF-8") from error
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise ValueError(
                f"{path}: not a complete gzip file ({error}): compress it again, or drop the .gz from "
                "the name of a plain file"
            ) from error
