"""Trajectories: episodes collected by running the SAME compiled graph with a sampling, recording policy.

Each episode keeps what the graph did (queries, documents, answer) with its reward from `scoring.py`,
and every policy call as a segment: the node, the prompt, the forced prefix, the completion's tokens and
their log-probabilities (for a decision: the chosen action's prefix tokens).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from langchain_core.runnables import Runnable
from tqdm import tqdm

from langchain_smartrag import SmartRAGContext
from langchain_smartrag.jsonl import read_jsonl

from .data import QAExample
from .evaluate import score_episode


def collect(
    graph: Runnable,
    examples: Sequence[QAExample],
    *,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One sampled episode per example, `batch_size` at a time (their policy calls share batched passes)."""
    random.seed(seed)
    torch.manual_seed(seed)
    context = SmartRAGContext(sample=True, record=True)
    episodes = []
    with tqdm(total=len(examples), desc="rollouts", file=sys.stderr, disable=not progress) as bar:
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            states = graph.batch([{"question": e.question} for e in chunk], {"max_concurrency": batch_size},
                                 return_exceptions=True, context=context)
            for example, state in zip(chunk, states, strict=True):
                episode = score_episode(example, state)
                if not isinstance(state, BaseException):
                    episode["documents"] = [{"page_content": d.page_content, "metadata": d.metadata} for d in state["documents"]]
                    episode["trace"] = state["trace"]
                episodes.append(episode)
            bar.update(len(chunk))
    return episodes


def save_episodes(episodes: Sequence[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in episodes))


def load_episodes(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, allow_blank=False)]
