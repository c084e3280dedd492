"""An episode's policy turns as training segments: prompt tokens, the completion the policy chose, and the
environment's reward on each completion token (the paper's placement; docs/training.md, "Training: warm-up
data, SFT, PPO").

A decision and the rewrite or answer that follows it on the same prompt are one segment: prompt ->
"[Search] query" or prompt -> "[Answer] text". An answer forced by the retrieval quota keeps its forced
"[Answer]" in the prompt: only what the policy chose is trained; so does an action word a decision gate chose
(Search-R1's masking of tokens the policy did not produce). Rewards: -alpha on the last token of every
search segment, the answer's correctness (EM + F1, or -1 if malformed) on the last answer token, and -alpha_preview
per preview on the first segment's last token; so an episode's token rewards add up to its `episode_reward`. With a
preview, an answer without a search is its own segment: its prompt, unlike the decision's, never holds the preview.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_smartrag.protocol import SEARCH
from langchain_smartrag.scoring import ALPHA, ALPHA_PREVIEW, answer_reward


@dataclass
class Segment:
    """One policy turn to train on."""

    episode: int
    """Index of its episode in the rollout (segments of one episode share advantages across turns)."""
    prompt_ids: list[int]
    completion_ids: list[int]
    scores: list[float]
    """The environment's reward per completion token (KL penalties are added later, by the trainer)."""
    decision_tokens: int = 0
    """How many of the completion's first tokens are the decision's action word (0: the quota forced it)."""


def episode_segments(
    episode: dict[str, Any], index: int, encode: Callable[[str], list[int]], alpha: float = ALPHA
) -> list[Segment]:
    """The segments of one recorded episode (`training.trajectories.collect`); none if it failed."""
    trace: Sequence[dict[str, Any]] = episode.get("trace") or []
    segments: list[Segment] = []
    i = 0
    while i < len(trace):
        entry = trace[i]
        if entry["node"] == "decide":
            prompt_ids, completion, searched = (
                encode(entry["prompt"]),
                list(entry["token_ids"]),
                entry["text"] == SEARCH,
            )
            if entry.get("decider") == "gate":  # the gate chose the action word: the policy's prompt, not its choice
                prompt_ids, completion = prompt_ids + completion, []
            decision_tokens = len(completion)
            following = trace[i + 1] if i + 1 < len(trace) else None
            if following is not None and following["node"] != "decide" and following["prompt"] == entry["prompt"]:
                completion += following["token_ids"]
                i += 1
        else:  # the quota forced this turn's action word: it is part of the prompt, not a choice
            prompt_ids = encode(entry["prompt"]) + encode(entry["prefix"])
            completion, searched = list(entry["token_ids"]), entry["node"] == "rewrite"
            decision_tokens = 0
        i += 1
        if not completion:
            continue
        scores = [0.0] * len(completion)
        if searched:
            scores[-1] -= alpha
        segments.append(Segment(index, prompt_ids, completion, scores, decision_tokens))
    if segments and trace[-1]["node"] == "answer":
        segments[-1].scores[-1] += answer_reward(
            episode["answer"], episode["golds"], well_formed=episode["well_formed"]
        )
    if segments and episode.get("previews"):  # the preview was paid before the first decision
        segments[0].scores[-1] -= ALPHA_PREVIEW * episode["previews"]
    return segments


def rollout_segments(
    episodes: Sequence[dict[str, Any]], encode: Callable[[str], list[int]], alpha: float = ALPHA
) -> list[Segment]:
    return [segment for i, episode in enumerate(episodes) for segment in episode_segments(episode, i, encode, alpha)]
