"""JSON Lines files, plain or gzip-compressed, read with errors that name the line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path, *, allow_blank: bool = True) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) from a JSON Lines file, gzip-compressed if it ends in `.gz`.

    A line that is not a JSON object (or a blank line, unless `allow_blank`) raises a `ValueError`
    that names the file and line.
    """
    path = Path(path)
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                if allow_blank:
                    continue
                raise ValueError(f"{path}:{number}: empty line")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row
