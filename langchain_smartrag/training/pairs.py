"""Paired episodes: every question played twice through the serving graph, its first decision forced to search and
forced to answer (greedy, same settings otherwise). Their reward difference is what a decision gate learns to
predict; at a quota of one retrieval the two episodes are exactly what any decision would have produced."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from .data import QAExample, sample
from .evaluate import evaluate

BRANCHES = {"search": "always-retrieve", "answer": "no-retrieval"}
"""Each branch of a pair and the evaluation mode that forces it."""


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs written so far; a last line cut short by a kill is dropped (it is played again on resume)."""
    path = Path(path)
    if not path.exists():
        return []
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            pairs.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return pairs


def _chunks(examples: Sequence[QAExample], size: int) -> Iterator[Sequence[QAExample]]:
    for first in range(0, len(examples), size):
        yield examples[first : first + size]


def play_pairs(
    graph: Runnable,
    examples: Sequence[QAExample],
    path: str | Path,
    *,
    batch_size: int = 16,
    chunk: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Play every example both ways and append one JSON line per question to `path` ({id, question, golds, extra,
    search, answer, delta}), a chunk at a time, so an interrupted run resumes where it stopped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_pairs(path)
    seen = {p["id"] for p in done}
    if path.exists():  # rewrite without a torn last line before appending
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in done), encoding="utf-8")
    todo = [e for e in examples if e.id not in seen]
    for part in _chunks(todo, chunk):
        runs = {
            branch: evaluate(graph, part, mode=mode, batch_size=batch_size, progress=progress)["records"]
            for branch, mode in BRANCHES.items()
        }
        lines = []
        for example, searched, answered in zip(part, runs["search"], runs["answer"], strict=True):
            pair = {
                "id": example.id,
                "question": example.question,
                "golds": example.answers,
                "extra": example.extra,
                "search": searched,
                "answer": answered,
                "delta": searched["reward"] - answered["reward"],
            }
            done.append(pair)
            lines.append(json.dumps(pair, ensure_ascii=False) + "\n")
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
    return done


def drawn_apart(
    sets: dict[str, list[QAExample]], counts: dict[str, int], seed: int, exclude: frozenset[str] = frozenset()
) -> list[QAExample]:
    """A seeded sample of `counts[name]` questions from each set, none in `exclude` nor drawn twice, interleaved (one
    question of each set in turn) so that any prefix of a run is a mix too."""
    drawn, seen = [], set(exclude)
    for name, count in counts.items():
        picked = sample([e for e in sets[name] if e.id not in seen], count, seed=seed)
        seen.update(e.id for e in picked)
        drawn.append(picked)
    return [s[i] for i in range(max(map(len, drawn), default=0)) for s in drawn if i < len(s)]
