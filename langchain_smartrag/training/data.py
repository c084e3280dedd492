"""QA data: the bundled dev/train samples (`datasets/`, package data) and any JSONL(.gz) of
{"id", "question", "answers"}."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_smartrag.jsonl import read_jsonl

DATA_DIR = Path(__file__).resolve().parent / "datasets"
"""The bundled QA samples (package data: they install with the wheel)."""


@dataclass(frozen=True)
class QAExample:
    """One question with its acceptable answers; every other field of the row is kept in `extra`."""

    id: str
    question: str
    answers: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


def load_qa(path: str | Path) -> list[QAExample]:
    """Read a QA file; a row with a missing or mistyped field, or an empty line between rows, raises naming the line."""
    examples = []
    for number, row in read_jsonl(path, allow_blank=False):
        where = f"{path}:{number}"
        if not isinstance(row.get("id"), (str, int)) or isinstance(row.get("id"), bool):
            raise ValueError(f"{where}: 'id' must be a string or an integer")
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise ValueError(f"{where}: 'question' must be a non-empty string")
        answers = row.get("answers")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"{where}: 'answers' must be a non-empty list of strings")
        extra = {k: v for k, v in row.items() if k not in ("id", "question", "answers")}
        examples.append(QAExample(str(row["id"]), row["question"], answers, extra))
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples


def dataset_path(name: str, split: str) -> Path:
    """The repository's own file for a data set and split, e.g. `datasets/hotpotqa/dev.jsonl`.

    Both are names, never paths: only the folders of `datasets/` and the files in them are found (`../x` is not).
    """
    known = sorted(p.name for p in DATA_DIR.iterdir() if p.is_dir()) if DATA_DIR.exists() else []
    if name not in known:
        raise ValueError(
            f"unknown data set {name!r}: give one of {', '.join(known)} (a file of your own: give its path "
            "as the data instead)"
        )
    splits = {
        p.name.removesuffix(".gz").removesuffix(".jsonl"): p  # a plain dev.jsonl wins over dev.jsonl.gz
        for pattern in ("*.jsonl.gz", "*.jsonl")
        for p in (DATA_DIR / name).glob(pattern)
    }
    if split not in splits:
        raise ValueError(f"no {split} split for data set {name!r} in {DATA_DIR} (splits: {', '.join(sorted(splits))})")
    return splits[split]


def sample(examples: list[QAExample], limit: int | None, seed: int = 0) -> list[QAExample]:
    """A seeded shuffle, then the first `limit` (all if None): the same subset for every mode and run."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:limit] if limit else shuffled
