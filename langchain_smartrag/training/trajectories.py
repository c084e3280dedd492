"""Trajectories: episodes collected by running the SAME compiled graph with a sampling, recording policy.

Each episode keeps what the graph did (queries, documents, answer) with its reward from `scoring.py`,
and every policy call as a segment: the node, the prompt, the forced prefix, the completion's tokens and
their log-probabilities (for a decision: the chosen action's prefix tokens).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from tqdm import tqdm

from langchain_smartrag import SmartRAGContext
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.scoring import ALPHA

from .data import QAExample
from .evaluate import score_episode


@dataclass
class RolloutContext(SmartRAGContext):
    """A training rollout's context: the public settings plus how the policy samples and records. Only training
    passes it, so no server, form or JSON schema shows these fields; None keeps the graph's own (greedy, no trace)."""

    sample: bool | None = None
    """Draw the decision from P(search) and sample text (top-k 50) instead of greedy.
    `config["configurable"]["seed"]` seeds an episode's draws, whatever else shares its batches."""
    temperature: float | None = None
    """With `sample`: the text's sampling temperature (default 1)."""
    sample_decision: bool | None = None
    """With `sample`: draw the decision (default), or take it at `threshold` as when serving while the text is
    still sampled (paired PPO rollouts force each branch with threshold 0 and above 1)."""
    record: bool | None = None
    """Append every policy call to the state's `trace`."""


def rollout_context(context: SmartRAGContext | None = None, **rollout: Any) -> RolloutContext:
    """`context` (public or a rollout's) as a rollout context with the `rollout` fields set over it."""
    fields = vars(context) if context is not None else {}
    return replace(RolloutContext(**fields), **rollout)


def collect(
    graph: Runnable,
    examples: Sequence[QAExample],
    *,
    batch_size: int = 32,
    seed: int | Sequence[int] = 0,
    context: SmartRAGContext | None = None,
    alpha: float = ALPHA,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One sampled episode per example, `batch_size` at a time (their policy calls share batched passes).

    Episode i is seeded with `seed * 1_000_003 + i` (or `seed[i]` for a sequence), so a rollout repeats
    exactly whatever the batching in float32; under bf16 autocast (`policy.autocast`) kernels round differently by
    batch shape and episodes may differ (PPO uses bf16 on a CUDA GPU only).
    `context` overrides the graph's settings (policy, retriever, quota); sampling and recording are forced on.
    """
    context = rollout_context(context, sample=True, record=True)
    seeds = [seed * 1_000_003 + i for i in range(len(examples))] if isinstance(seed, int) else list(seed)
    if len(seeds) != len(examples):
        raise ValueError(f"{len(seeds)} seeds for {len(examples)} examples")
    episodes = []
    with tqdm(total=len(examples), desc="rollouts", file=sys.stderr, disable=not progress) as bar:
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            inputs = [{"question": e.question} for e in chunk]
            configs: list[RunnableConfig] = [
                {"max_concurrency": batch_size, "configurable": {"seed": seeds[first + i]}} for i in range(len(chunk))
            ]
            states = graph.batch(inputs, configs, return_exceptions=True, context=context)
            for example, state in zip(chunk, states, strict=True):
                episode = score_episode(example, state, alpha)
                if not isinstance(state, BaseException):
                    episode["documents"] = [
                        {"page_content": d.page_content, "metadata": d.metadata} for d in state["documents"]
                    ]
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
