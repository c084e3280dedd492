"""Paired episodes: every question played twice through the serving graph, its first decision forced to search and
forced to answer (greedy, same settings otherwise). Their reward difference is what a decision gate learns to
predict; at a quota of one retrieval the two episodes are exactly what any decision would have produced. For a gate
that reads the reader the two episodes are its two drafts (`draft_pairs`), what the graph answers with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable

from langchain_smartrag.decoding import Generation
from langchain_smartrag.gate import index_features, reader_features
from langchain_smartrag.injection import split_instructions
from langchain_smartrag.policy import SmartRAGPolicy
from langchain_smartrag.protocol import ANSWER, OBSERVATION_DOCUMENTS, parse_action
from langchain_smartrag.scoring import episode_reward

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
    done, todo = _resumed(path, examples)
    for part in _chunks(todo, chunk):
        runs = {
            branch: evaluate(graph, part, mode=mode, batch_size=batch_size, progress=progress)["records"]
            for branch, mode in BRANCHES.items()
        }
        _append(path, done, [_pair(e, s, a) for e, s, a in zip(part, runs["search"], runs["answer"], strict=True)])
    return done


def draft_pairs(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    examples: Sequence[QAExample],
    path: str | Path,
    *,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """`drafted_pairs` appended to `path` a batch at a time, one JSON line per question, so an interrupted run
    resumes where it stopped (as `play_pairs`)."""
    done, todo = _resumed(path, examples)
    for part in _chunks(todo, batch_size):
        _append(path, done, drafted_pairs(policy, retriever, part, batch_size=batch_size))
    return done


def drafted_pairs(
    policy: SmartRAGPolicy, retriever: BaseRetriever, examples: Sequence[QAExample], *, batch_size: int = 8
) -> list[dict[str, Any]]:
    """For a gate that reads the reader: each example's probe, decision pass and two greedy drafts, as the graph makes
    them, `batch_size` questions a pass ({id, question, golds, extra, search, answer, delta, features}). The draft
    over the probe's hits is the search episode (one retrieval: the probe), the closed-book draft the answer
    episode, and `features` the gate's row (`training.gate.design` reads it)."""
    pairs = []
    for part in _chunks(examples, batch_size):
        probes = [retriever.invoke(e.question) for e in part]
        hits = [split_instructions(p, keep=OBSERVATION_DOCUMENTS)[0] for p in probes]
        closed_prompts = [policy.prompt(e.question) for e in part]
        decisions = policy.decide_batch(closed_prompts)  # caches each [Answer] branch: the closed drafts continue it
        read_prompts = [policy.prompt(e.question, h) for e, h in zip(part, hits, strict=True)]
        drafts = policy.generate_batch(closed_prompts + read_prompts, ANSWER)
        for i, (example, probe, documents, decision) in enumerate(zip(part, probes, hits, decisions, strict=True)):
            closed, read = drafts[i], drafts[len(part) + i]
            pairs.append(draft_pair(example, probe, documents, decision.search_logit, closed, read))
    return pairs


def draft_pair(
    example: QAExample,
    probe: Sequence[Document],
    documents: Sequence[Document],
    search_logit: float,
    closed: Generation,
    read: Generation,
) -> dict[str, Any]:
    """One question's pair from its probe's hits (all of them, and the `documents` the read draft saw), the decision
    pass's search logit and its two drafts: each draft scored as the episode it stands for, and the gate's row."""
    features = {
        "hidden": None,
        "search_logit": search_logit,
        "index": index_features(example.question, probe),
        "reader": reader_features(documents, closed, read),
    }
    return _pair(example, _episode(example, read, 1), _episode(example, closed, 0), features=features)


def _episode(example: QAExample, draft: Generation, retrievals: int) -> dict[str, Any]:
    """A draft as the episode it stands for: its answer, whether it parsed, and its reward."""
    action = parse_action(ANSWER + draft.text)
    reward = episode_reward(action.text, example.answers, retrievals, well_formed=action.well_formed)
    return {"answer": action.text, "well_formed": action.well_formed, "retrievals": retrievals, "reward": reward}


def _pair(example: QAExample, searched: dict[str, Any], answered: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "id": example.id,
        "question": example.question,
        "golds": example.answers,
        "extra": example.extra,
        "search": searched,
        "answer": answered,
        "delta": searched["reward"] - answered["reward"],
        **more,
    }


def _resumed(path: str | Path, examples: Sequence[QAExample]) -> tuple[list[dict[str, Any]], list[QAExample]]:
    """The pairs already in `path` (rewritten without a torn last line) and the examples still to play."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_pairs(path)
    if path.exists():
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in done), encoding="utf-8")
    seen = {p["id"] for p in done}
    return done, [e for e in examples if e.id not in seen]


def _append(path: str | Path, done: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> None:
    """Append `pairs` to the file, synced, and to `done`."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
        f.flush()
        os.fsync(f.fileno())
    done.extend(pairs)


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
