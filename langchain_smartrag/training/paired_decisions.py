"""Paired decisions (`PPOConfig.paired_decisions`): every question rolled out both ways, its first decision forced to
search and to answer (everything the policy writes still sampled), and that decision trained on each branch's
return against the pair's mean (`ppo_math.paired_decision_advantages`).

An iteration's paired episodes are [0, n) searched first and [n, 2n) answered first, question i in episodes i and
n + i. Forced decision tokens are not samples of the policy, so their log-ratios to the reference are no KL
estimate: each paired episode is charged its decision's exact two-action KL instead (`decision_kls`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import torch

from .ppo_math import paired_decision_advantages, two_action_kl
from .segments import Segment
from .trajectories import RolloutContext

NEVER = 1.01
"""A threshold above any P(search): the decision always answers."""

Pair = tuple[int, int, torch.Tensor, torch.Tensor]
"""(searched-first episode, answered-first episode, Q_search, Q_answer)."""


def branch_contexts(context: RolloutContext) -> list[RolloutContext]:
    """The rollout context of each branch: the first decision taken at threshold 0 (search), then at `NEVER`."""
    return [replace(context, sample_decision=False, threshold=threshold) for threshold in (0.0, NEVER)]


def pair_returns(
    episodes: Sequence[dict[str, Any]], by_episode: Sequence[Sequence[int]], rewards: Sequence[torch.Tensor]
) -> list[Pair]:
    """Paired episodes (searched first: [0, n), answered first: [n, 2n)) as (searched, answered, Q_s, Q_n): the
    returns of both branches of each question (all shaped rewards, KL included); pairs with a failed episode left
    out."""
    n = len(episodes) // 2

    def branch_return(e: int) -> torch.Tensor:
        return cast(torch.Tensor, sum(rewards[i].sum() for i in by_episode[e]))

    return [
        (s, a, branch_return(s), branch_return(a))
        for s, a in zip(range(n), range(n, 2 * n), strict=True)
        if by_episode[s] and by_episode[a]
    ]


def pair_decisions(
    pairs: Sequence[Pair],
    segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]],
    advantages: list[torch.Tensor],
    scale: torch.Tensor,
) -> None:
    """Give each question's first decision, in both its episodes, the paired advantage of their returns (`pair_returns`)
    times `scale` (the whitening's, so that it weighs like the other tokens). A pair with a failed episode keeps its
    ordinary advantages."""
    for searched, answered, return_search, return_answer in pairs:
        for e, advantage in zip(
            (searched, answered), paired_decision_advantages(return_search, return_answer), strict=True
        ):
            first = by_episode[e][0]
            advantages[first][: segments[first].decision_tokens] = advantage * scale


def decision_kls(
    pairs: Sequence[Pair],
    segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]],
    logprobs: Sequence[torch.Tensor],
    ref_logprobs: Sequence[torch.Tensor],
) -> dict[int, float]:
    """Each paired episode's first decision's KL to the reference (`two_action_kl`), from the action words' log-probs
    in its two branches; both episodes of a question get the same value."""
    out = {}
    for searched, answered, _, _ in pairs:
        firsts = [by_episode[e][0] for e in (searched, answered)]
        search, answer = (
            [lp[i][: segments[i].decision_tokens].sum() for lp in (logprobs, ref_logprobs)] for i in firsts
        )
        kl = float(two_action_kl(search[0], answer[0], search[1], answer[1]))
        out[searched] = out[answered] = kl
    return out


def charge_decision_kls(
    episode_kl: list[float],
    pairs: Sequence[Pair],
    segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]],
    logprobs: Sequence[torch.Tensor],
    ref_logprobs: Sequence[torch.Tensor],
    kl_tokens: Sequence[torch.Tensor],
) -> None:
    """In each paired episode's logged KL, replace its forced decision tokens' log-ratios by the decision's exact KL."""
    for e, kl in decision_kls(pairs, segments, by_episode, logprobs, ref_logprobs).items():
        first = by_episode[e][0]
        episode_kl[e] += kl - float(kl_tokens[first][: segments[first].decision_tokens].sum())


def expected_rewards(episodes: Sequence[dict[str, Any]], pairs: Sequence[Pair]) -> list[float]:
    """The reward each paired question's policy expects when it decides itself: its two branches (`pair_returns`)
    weighted by its P(search)."""
    return [
        episodes[s]["search_probabilities"][0] * episodes[s]["reward"]
        + (1 - episodes[s]["search_probabilities"][0]) * episodes[a]["reward"]
        for s, a, _, _ in pairs
    ]
