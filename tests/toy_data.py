"""The toy QA and warm-up rows the training and reliability tests write to files, and the writer."""

from __future__ import annotations

import json
from pathlib import Path

QA = [
    {"id": "h", "question": "Who wrote Hamlet?", "answers": ["William Shakespeare"]},
    {"id": "p", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "a", "question": "When did Apollo 11 land?", "answers": ["1969"]},
]
WARMUP = [
    {"prompt": "Question: who?\nResponse:\n", "completion": "[Answer] me"},
    {"prompt": "Question: where?\nResponse:\n", "completion": "[Search] where"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """`rows` as JSON lines at `path`; returns `path`."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
