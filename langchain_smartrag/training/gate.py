"""Fitting the decision gate: features of each paired question (the policy's decision pass and a probe search), a
head chosen by cross-validation on train questions, a threshold selected on held-out train questions, and the
report (AUC, reward against retrieval rate, the share of the oracle's gain closed)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from langchain_core.retrievers import BaseRetriever

from langchain_smartrag.gate import INDEX_FEATURES, POLICY_FEATURES, READER_FEATURES, DecisionGate, index_features
from langchain_smartrag.policy import SmartRAGPolicy
from langchain_smartrag.scoring import ALPHA_PREVIEW

from .data import QAExample
from .evaluate import evaluate
from .pairs import drafted_pairs
from .strategies import score_rule_threshold, strategy_rewards, strategy_table

FAMILIES = {
    "index": INDEX_FEATURES,
    "token+index": POLICY_FEATURES + INDEX_FEATURES,
    "hidden+token+index": ("hidden",) + POLICY_FEATURES + INDEX_FEATURES,
    "hidden+token": ("hidden",) + POLICY_FEATURES,
    "reader": READER_FEATURES,
    "reader+index": READER_FEATURES + INDEX_FEATURES,
    "reader+token+index": READER_FEATURES + POLICY_FEATURES + INDEX_FEATURES,
}
"""Feature sets the cross-validation chooses between (`hidden` stands for every entry of the hidden state; the
reader's need `draft_pairs`' rows, the others `decision_features`')."""


@dataclass
class Candidate:
    """One head to try: a feature family, linear or one tanh layer of `units`, and an L2 strength."""

    family: str
    units: int
    l2: float


_HEADS = [Candidate(f, u, l2) for f in FAMILIES for u in (0, 8) for l2 in (1e-2, 1e-1, 1.0)]
CANDIDATES = [c for c in _HEADS if not c.family.startswith("reader")]
READER_CANDIDATES = [c for c in _HEADS if c.family.startswith("reader")]
"""The heads tried for a gate that reads the reader (on `training.pairs.draft_pairs`)."""


def decision_features(
    policy: SmartRAGPolicy, retriever: BaseRetriever, questions: Sequence[str], batch_size: int = 16
) -> list[dict[str, Any]]:
    """Per question: the hidden state and search logit of the policy's first decision, and the probe's features."""
    rows = []
    for first in range(0, len(questions), batch_size):
        chunk = questions[first : first + batch_size]
        decisions = policy.decide_batch([policy.prompt(q) for q in chunk])
        for question, decision in zip(chunk, decisions, strict=True):
            index = index_features(question, retriever.invoke(question))
            if index is None:
                raise ValueError(
                    "the retriever gives no scores (Document.metadata['score'] or 'relevance_score'): "
                    "a gate cannot read this index"
                )
            rows.append({"hidden": decision.hidden, "search_logit": decision.search_logit, "index": index})
    return rows


def design(rows: Sequence[dict[str, Any]], family: str) -> tuple[list[str], torch.Tensor]:
    """Feature names and the matrix of one family over `rows`."""
    names: list[str] = []
    for name in FAMILIES[family]:
        names += [f"h{i}" for i in range(len(rows[0]["hidden"]))] if name == "hidden" else [name]
    gate = DecisionGate(names, [0.0] * len(names), [1.0] * len(names), [0.0] * len(names), 0.0)
    return names, torch.tensor([gate.vector(**r) for r in rows])


def fit_head(x: torch.Tensor, delta: torch.Tensor, candidate: Candidate, seed: int = 0) -> dict[str, Any]:
    """A cost-weighted logistic head: label "search paid" (delta > 0), weight |delta|, so that P >= 0.5 is the
    decision with the higher expected reward; standardised inputs, L2 on the weights, full-batch L-BFGS."""
    torch.manual_seed(seed)
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / scale
    label, weight = (delta > 0).float(), delta.abs() / delta.abs().mean().clamp_min(1e-9)
    width = z.shape[1]
    hidden = torch.nn.Linear(width, candidate.units) if candidate.units else None
    head = torch.nn.Linear(candidate.units or width, 1)
    parameters = [*head.parameters(), *(hidden.parameters() if hidden else [])]
    optimizer = torch.optim.LBFGS(parameters, max_iter=200, line_search_fn="strong_wolfe")

    def logits() -> torch.Tensor:
        return head(torch.tanh(hidden(z)) if hidden else z)[:, 0]

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(), label, weight=weight)
        loss = loss + candidate.l2 * sum((p**2).sum() for p in parameters if p.dim() > 1)
        loss.backward()
        return loss

    optimizer.step(closure)
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": head.weight[0].tolist(),
        "bias": float(head.bias[0].detach()),
        "hidden": hidden.weight.tolist() if hidden else [],
        "hidden_bias": hidden.bias.tolist() if hidden else [],
    }


def probabilities(gate: DecisionGate, x: torch.Tensor) -> torch.Tensor:
    """The gate's P(search pays) for each row of `x` (the same arithmetic as `DecisionGate.probability`)."""
    z = (x - torch.tensor(gate.mean)) / torch.tensor(gate.scale)
    if gate.hidden:
        z = torch.tanh(z @ torch.tensor(gate.hidden).T + torch.tensor(gate.hidden_bias))
    return torch.sigmoid(z @ torch.tensor(gate.weights) + gate.bias)


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is empty."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def gate_reward(
    p: torch.Tensor, searched: torch.Tensor, answered: torch.Tensor, threshold: float, probe_cost: float
) -> torch.Tensor:
    """Each question's reward when the gate decides at `threshold` (the probe search charged to every question)."""
    return torch.where(p >= threshold, searched, answered) - probe_cost


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def cross_validate(
    rows: Sequence[dict[str, Any]],
    searched: torch.Tensor,
    answered: torch.Tensor,
    candidates: Sequence[Candidate] = CANDIDATES,
    k: int = 5,
    seed: int = 0,
    probe_cost: float = 0.0,
) -> list[dict[str, Any]]:
    """Mean reward at P >= 0.5 and AUC of each candidate over `k` folds of the paired questions, best first."""
    delta = searched - answered
    results = []
    for candidate in candidates:
        names, x = design(rows, candidate.family)
        p = torch.zeros(len(rows))
        for held in folds(len(rows), k, seed):
            train = sorted(set(range(len(rows))) - set(held))
            head = fit_head(x[train], delta[train], candidate, seed)
            p[held] = probabilities(DecisionGate(names, **head), x[held])
        reward = gate_reward(p, searched, answered, 0.5, probe_cost)
        results.append(
            {
                "candidate": candidate,
                "reward": float(reward.mean()),
                "auc": auc(p.tolist(), (delta > 0).tolist()),
                "retrieval_rate": float((p >= 0.5).float().mean()),
            }
        )
    return sorted(results, key=lambda r: -r["reward"])


THRESHOLDS = tuple(step / 20 for step in range(21))
"""The thresholds a gate's curve and its threshold selection try."""


def curve(
    p: torch.Tensor,
    searched: torch.Tensor,
    answered: torch.Tensor,
    probe_cost: float,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[dict[str, float]]:
    """Reward and retrieval rate at each threshold (the cost knob's curve)."""
    return [
        {
            "threshold": t,
            "reward": float(gate_reward(p, searched, answered, t, probe_cost).mean()),
            "retrieval_rate": float((p >= t).float().mean()),
        }
        for t in thresholds
    ]


def oracle_share(reward: float, searched: torch.Tensor, answered: torch.Tensor) -> float:
    """The share of the gap between the best fixed strategy and the oracle (the better branch per question) closed."""
    best_fixed = max(float(searched.mean()), float(answered.mean()))
    oracle = float(torch.maximum(searched, answered).mean())
    return (reward - best_fixed) / (oracle - best_fixed) if oracle > best_fixed else math.nan


def pair_rewards(pairs: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(searched, answered): each pair's reward with the search forced and with the answer forced."""
    return (
        torch.tensor([p["search"]["reward"] for p in pairs], dtype=torch.float32),
        torch.tensor([p["answer"]["reward"] for p in pairs], dtype=torch.float32),
    )


def select_threshold(p: torch.Tensor, searched: torch.Tensor, answered: torch.Tensor, probe_cost: float) -> float:
    """The threshold with the highest mean reward on held-out questions (the one nearest 0.5 among ties)."""
    points = curve(p, searched, answered, probe_cost)
    best = max(point["reward"] for point in points)
    return min((pt["threshold"] for pt in points if pt["reward"] >= best - 1e-9), key=lambda t: abs(t - 0.5))


def fit_gate(
    rows: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    *,
    probe_cost: float,
    held_out: float = 0.25,
    seed: int = 0,
    trained_under: dict[str, Any] | None = None,
    candidates: Sequence[Candidate] = CANDIDATES,
) -> tuple[DecisionGate, dict[str, Any]]:
    """Choose a head by cross-validation on the training share of the pairs, its threshold on the held-out share,
    then refit it on all pairs; returns the gate and the report (held-out numbers are for the selected head)."""
    searched, answered = pair_rewards(pairs)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * (1 - held_out))
    train, held = sorted(order[:cut]), sorted(order[cut:])
    scores = cross_validate(
        [rows[i] for i in train], searched[train], answered[train], candidates, seed=seed, probe_cost=probe_cost
    )
    best = scores[0]["candidate"]
    names, x = design(rows, best.family)
    head = DecisionGate(names, **fit_head(x[train], (searched - answered)[train], best, seed))
    p_held = probabilities(head, x[held])
    threshold = select_threshold(p_held, searched[held], answered[held], probe_cost)
    held_reward = float(gate_reward(p_held, searched[held], answered[held], threshold, probe_cost).mean())
    gate = DecisionGate(
        names,
        **fit_head(x, searched - answered, best, seed),
        threshold=threshold,
        hidden_size=sum(n.startswith("h") and n[1:].isdigit() for n in names),
        trained_under={
            **(trained_under or {}),
            "pairs": len(rows),
            "candidate": vars(best),
            "top_score_range": [min(r["index"]["top_score"] for r in rows), max(r["index"]["top_score"] for r in rows)],
        },
    )
    report = {
        "candidate": vars(best),
        "threshold": threshold,
        "pairs": len(rows),
        "held_out": len(held),
        "cross_validation": [
            {**vars(s["candidate"]), **{k: v for k, v in s.items() if k != "candidate"}} for s in scores
        ],
        "held_out_auc": auc(p_held.tolist(), ((searched - answered)[held] > 0).tolist()),
        "held_out_reward": held_reward,
        "held_out_never": float(answered[held].mean()),
        "held_out_always": float(searched[held].mean()),
        "held_out_oracle": float(torch.maximum(searched[held], answered[held]).mean()),
        "held_out_oracle_share": oracle_share(held_reward, searched[held], answered[held]),
        "held_out_curve": curve(p_held, searched[held], answered[held], probe_cost),
    }
    return gate, report


def gate_from_pairs(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    pairs: Sequence[dict[str, Any]],
    *,
    seed: int = 0,
    trained_under: dict[str, Any] | None = None,
) -> tuple[DecisionGate, dict[str, Any]]:
    """`fit_gate` on paired episodes (`training.pairs.play_pairs`), the features read from `policy` and `retriever`
    (drafted pairs carry their own: `gate_from_drafts`)."""
    if all("features" in p for p in pairs):
        return gate_from_drafts(pairs, seed=seed, trained_under=trained_under)
    rows = decision_features(policy, retriever, [p["question"] for p in pairs])
    return _fit_with_score_rule(rows, pairs, CANDIDATES, seed, trained_under)


def gate_from_drafts(
    pairs: Sequence[dict[str, Any]], *, seed: int = 0, trained_under: dict[str, Any] | None = None
) -> tuple[DecisionGate, dict[str, Any]]:
    """`fit_gate` among the reader's heads on drafted pairs (`training.pairs.draft_pairs`)."""
    return _fit_with_score_rule([p["features"] for p in pairs], pairs, READER_CANDIDATES, seed, trained_under)


def _fit_with_score_rule(
    rows: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    candidates: Sequence[Candidate],
    seed: int,
    trained_under: dict[str, Any] | None,
) -> tuple[DecisionGate, dict[str, Any]]:
    """`fit_gate`, with the score rule's threshold tuned on the same pairs recorded in the gate for
    `compare_strategies`."""
    threshold = score_rule_threshold(
        [r["index"]["top_score"] for r in rows],
        [p["search"]["reward"] for p in pairs],
        [p["answer"]["reward"] for p in pairs],
    )
    trained_under = {**(trained_under or {}), "score_rule_threshold": threshold if math.isfinite(threshold) else None}
    return fit_gate(
        rows, pairs, probe_cost=ALPHA_PREVIEW, seed=seed, trained_under=trained_under, candidates=candidates
    )


def compare_strategies(
    graph: Any,
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    examples: Sequence[QAExample],
    *,
    batch_size: int = 32,
    config: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Both forced episodes of every question through `graph`, and every first-decision strategy's reward read off
    them (`training.strategies`); the gate and the score rule are the policy's gate's, when it has one. For a gate
    that reads the reader the two episodes are its drafts (`draft_pairs`): "always-retrieve" is then retrieve-then-
    read with the question, from the probe's hits."""
    gate = policy.gate
    if gate is not None and gate.reads_reader:
        pairs = drafted_pairs(policy, retriever, examples, batch_size=batch_size)
        rows = [p["features"] for p in pairs]
        runs: dict[str, Any] = {"pairs": pairs}
        searched, answered = [p["search"]["reward"] for p in pairs], [p["answer"]["reward"] for p in pairs]
    else:
        runs = {
            mode: evaluate(graph, examples, mode=mode, batch_size=batch_size, config=config, progress=progress)
            for mode in ("always-retrieve", "no-retrieval")
        }
        rows = decision_features(policy, retriever, [e.question for e in examples], batch_size)
        searched = [r["reward"] for r in runs["always-retrieve"]["records"]]
        answered = [r["reward"] for r in runs["no-retrieval"]["records"]]
    rewards = strategy_rewards(
        searched,
        answered,
        rows,
        probe_cost=ALPHA_PREVIEW,
        gate=gate,
        score_threshold=gate.trained_under.get("score_rule_threshold") if gate else None,
    )
    return {"config": config or {}, "table": strategy_table(rewards), "runs": runs}


def plot_curve(report: dict[str, Any], path: str | Path) -> None:
    """Reward against retrieval rate on the held-out pairs: the gate's threshold sweep and the fixed strategies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["held_out_curve"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([p["retrieval_rate"] for p in points], [p["reward"] for p in points], "o-", label="gate (threshold sweep)")
    ax.scatter(
        [0, 1], [report["held_out_never"], report["held_out_always"]], color="k", zorder=3, label="never / always"
    )
    ax.axhline(report["held_out_oracle"], ls="--", color="gray", label="oracle")
    ax.set_xlabel("retrieval rate")
    ax.set_ylabel("mean reward")
    ax.set_title(f"held-out pairs (n={report['held_out']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def restandardised(gate: DecisionGate, rows: Sequence[dict[str, Any]]) -> DecisionGate:
    """The gate with its index features' mean and scale taken from `rows` (a corpus whose scores sit elsewhere: the
    head then reads each score relative to that corpus, as it read BM25's relative to the bundled one)."""
    mean, scale = list(gate.mean), list(gate.scale)
    for i, name in enumerate(gate.features):
        if name in INDEX_FEATURES:
            values = torch.tensor([r["index"][name] for r in rows])
            mean[i], scale[i] = float(values.mean()), float(values.std().clamp_min(1e-6))
    return dataclasses.replace(gate, mean=mean, scale=scale)


def calibrate(
    gate: DecisionGate,
    rows: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    *,
    probe_cost: float,
    k: int = 5,
    seed: int = 0,
) -> tuple[DecisionGate, dict[str, Any]]:
    """Fit a trained gate to a user's own questions and index: its threshold alone, or its score features re-read
    relative to this corpus as well, whichever earns more reward across `k` folds (a threshold selected on the other
    folds); the chosen one is then set on all the questions. The head's weights stay as trained."""
    searched, answered = pair_rewards(pairs)
    variants = {"as trained": gate, "threshold": gate}
    if gate.reads_scores:
        variants["threshold + score scale"] = restandardised(gate, rows)
    report: dict[str, Any] = {"questions": len(rows), "cross_validated_reward": {}}
    for name, variant in variants.items():
        p = torch.tensor([variant.p_search(**r) for r in rows])

        def threshold(among: list[int], refit: bool = name != "as trained", p: torch.Tensor = p) -> float:
            return select_threshold(p[among], searched[among], answered[among], probe_cost) if refit else gate.threshold

        rewards = torch.zeros(len(rows))
        for held in folds(len(rows), k, seed):
            rest = sorted(set(range(len(rows))) - set(held))
            rewards[held] = gate_reward(p[held], searched[held], answered[held], threshold(rest), probe_cost)
        report["cross_validated_reward"][name] = float(rewards.mean())
        variants[name] = dataclasses.replace(variant, threshold=threshold(list(range(len(rows)))))
    chosen = max(report["cross_validated_reward"], key=report["cross_validated_reward"].get)
    report |= {
        "chosen": chosen,
        "never": float(answered.mean()),
        "always": float(searched.mean()),
        "oracle": float(torch.maximum(searched, answered).mean()),
        "threshold": variants[chosen].threshold,
    }
    calibrated = dataclasses.replace(
        variants[chosen],
        trained_under={**gate.trained_under, "calibrated": {"questions": len(rows), "chosen": chosen}},
    )
    top = [r["index"]["top_score"] for r in rows]
    if chosen == "threshold + score scale":
        calibrated.trained_under["top_score_range"] = [min(top), max(top)]
    return calibrated, report
