"""Every first-decision strategy on one set of questions, read off the questions' two forced episodes.

At a quota of one retrieval a question's episode under any first decision is one of its two forced episodes (search
forced, answer forced; greedy), so each strategy's reward follows from the pair: never, always-retrieve, the title
rule, the score rule, the action token, the gate, and the oracle (the better episode). The rules and a gate that reads
the index pay the probe search. `smartrag eval --compare` prints this table for a user's own questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from langchain_smartrag.gate import DecisionGate

FIXED = ("never", "always-retrieve", "title rule", "score rule")
"""The strategies that need no training: the best of them on a set is the reference for paired standard errors."""


def score_rule_threshold(tops: Sequence[float], searched: Sequence[float], answered: Sequence[float]) -> float:
    """The top-score threshold with the best summed reward on (train) pairs: search when the probe's top score is at
    least this (infinity: never)."""
    best, best_reward = math.inf, sum(answered)
    for t in sorted(set(tops)):
        reward = sum(s if top >= t else a for top, s, a in zip(tops, searched, answered, strict=True))
        if reward > best_reward:
            best, best_reward = t, reward
    return best


def strategy_rewards(
    searched: Sequence[float],
    answered: Sequence[float],
    rows: Sequence[dict[str, Any]],
    *,
    probe_cost: float,
    gate: DecisionGate | None = None,
    score_threshold: float | None = None,
) -> dict[str, list[float]]:
    """Each strategy's reward per question; `rows` are `training.gate.decision_features`' (the decision pass and the
    probe). The score rule needs a threshold tuned on train pairs and the gate a gate: without them they are left out.
    The title rule searches when a top-3 title shares a word of the question (`title_overlap` > 0)."""

    def pick(choices: Sequence[bool], cost: float) -> list[float]:
        return [(s if c else a) - cost for c, s, a in zip(choices, searched, answered, strict=True)]

    rewards = {
        "never": list(answered),
        "always-retrieve": list(searched),
        "title rule": pick([r["index"]["title_overlap"] > 0 for r in rows], probe_cost),
    }
    if score_threshold is not None:
        rewards["score rule"] = pick([r["index"]["top_score"] >= score_threshold for r in rows], probe_cost)
    rewards["token"] = pick([r["search_logit"] >= 0 for r in rows], 0.0)
    if gate is not None:
        p = [gate.p_search(**r) for r in rows]
        rewards["gate"] = pick([x >= gate.threshold for x in p], probe_cost if gate.reads_index else 0.0)
    rewards["oracle"] = [max(s, a) for s, a in zip(searched, answered, strict=True)]
    return rewards


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def paired_se(a: Sequence[float], b: Sequence[float]) -> float:
    """The standard error of mean(a) - mean(b) over the same questions."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    if len(d) < 2:
        return math.nan
    m = _mean(d)
    return math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))


def strategy_table(rewards: dict[str, list[float]]) -> dict[str, Any]:
    """Mean reward per strategy, and its difference from the best fixed strategy with that difference's paired
    standard error."""
    best = max((name for name in FIXED if name in rewards), key=lambda name: _mean(rewards[name]))
    return {
        "n": len(rewards["never"]),
        "best_fixed": best,
        "strategies": {
            name: {
                "reward": _mean(r),
                "vs_best_fixed": _mean(r) - _mean(rewards[best]),
                "se": paired_se(r, rewards[best]),
            }
            for name, r in rewards.items()
        },
    }


def markdown_table(table: dict[str, Any]) -> str:
    """The table as markdown: one row per strategy."""
    lines = [
        f"n={table['n']}; best fixed strategy: {table['best_fixed']}",
        "",
        "| strategy | reward | vs best fixed (± paired SE) |",
        "|---|---:|---:|",
    ]
    for name, s in table["strategies"].items():
        lines.append(f"| {name} | {s['reward']:.3f} | {s['vs_best_fixed']:+.3f} ± {s['se']:.3f} |")
    return "\n".join(lines)
