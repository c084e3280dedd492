"""Every first-decision strategy on the dev sets, from the paired dev episodes the reproduction benchmark recorded.

    HF_HUB_OFFLINE=1 python experiments/gate/dev_table.py --gate runs/gate --train-pairs runs/gate/train-pairs.jsonl \
        --output experiments/gate/results/dev_table.json

At a quota of one retrieval a question's episode under any first decision is one of its two forced episodes
(`benchmarks/results/reproduce/*--smartrag--{always-retrieve,no-retrieval}.json`, the shipped adapter, greedy), so
each strategy's reward is read off them: never, always-retrieve, the title rule (search when a top-3 title shares a
content word with the question), the score rule (search when the top BM25 score clears the threshold that scores best
on the train pairs), the action token at 0.5, the gate at its own threshold, and the oracle (the better episode).
The rules and the gate pay the probe search (ALPHA_PREVIEW). Paired standard errors are against the best of never,
always-retrieve and the two rules on each set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "preview"))
from _shared import DATA_SETS, ROOT, result_path
from preview_rules import title_rule

from langchain_smartrag import BM25Retriever, DecisionGate, SmartRAGPolicy
from langchain_smartrag.gate import index_features
from langchain_smartrag.scoring import ALPHA_PREVIEW
from langchain_smartrag.training.pairs import read_pairs

RECORDS = ROOT / "benchmarks" / "results" / "reproduce"
FIXED = ("never", "always-retrieve", "title rule", "score rule")
"""The fixed strategies the gate must beat; the best of them on each set is the reference for paired errors."""


def views(policy: SmartRAGPolicy, retriever: BM25Retriever, questions: list[str], batch: int = 16) -> list[dict]:
    """Per question: the token's search logit, the hidden state, the probe's features and the title rule's call."""
    out = []
    for first in range(0, len(questions), batch):
        chunk = questions[first : first + batch]
        for question, decision in zip(chunk, policy.decide_batch([policy.prompt(q) for q in chunk]), strict=True):
            documents = retriever.invoke(question)
            out.append(
                {
                    "logit": decision.search_logit,
                    "hidden": decision.hidden,
                    "index": index_features(question, documents),
                    "title": title_rule(question, documents),
                }
            )
    return out


def score_threshold(retriever: BM25Retriever, pairs: list[dict]) -> float:
    """The top-score threshold with the best mean reward on the train pairs."""
    tops = [index_features(p["question"], retriever.invoke(p["question"]))["top_score"] for p in pairs]
    candidates = sorted(set(tops)) + [math.inf]

    def reward(t: float) -> float:
        return sum(p["search" if s >= t else "answer"]["reward"] for p, s in zip(pairs, tops, strict=True))

    return max(candidates, key=reward)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def paired_se(a: list[float], b: list[float]) -> float:
    d = [x - y for x, y in zip(a, b, strict=True)]
    m = mean(d)
    return math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", required=True, help="folder holding gate.json")
    parser.add_argument("--train-pairs", required=True, help="train pairs (the score rule's threshold is tuned there)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    gate = DecisionGate.load(args.gate)
    if gate is None:
        raise SystemExit(f"no gate.json in {args.gate}")
    policy, retriever = SmartRAGPolicy.embedded(), BM25Retriever.bundled(k=4)
    threshold = score_threshold(retriever, read_pairs(args.train_pairs))
    print(f"score rule: top BM25 score >= {threshold:.2f} (tuned on the train pairs)")
    table = {}
    for variant in DATA_SETS:
        runs = {}
        for mode in ("always-retrieve", "no-retrieval"):
            path = result_path(RECORDS, variant, "smartrag", mode)
            runs[mode] = {r["id"]: r for r in json.loads(path.read_text())["records"]}
        ids = [i for i in runs["always-retrieve"] if i in runs["no-retrieval"]]
        searched = [runs["always-retrieve"][i]["reward"] for i in ids]
        answered = [runs["no-retrieval"][i]["reward"] for i in ids]
        seen = views(policy, retriever, [runs["always-retrieve"][i]["question"] for i in ids])

        def pick(choices: list[bool], cost: float, s: list[float] = searched, a: list[float] = answered) -> list[float]:
            return [(x if c else y) - cost for c, x, y in zip(choices, s, a, strict=True)]

        gated = [gate.probability(gate.vector(v["hidden"], v["logit"], v["index"])) >= gate.threshold for v in seen]
        rewards = {
            "never": answered,
            "always-retrieve": searched,
            "title rule": pick([v["title"] for v in seen], ALPHA_PREVIEW),
            "score rule": pick([v["index"]["top_score"] >= threshold for v in seen], ALPHA_PREVIEW),
            "token": pick([v["logit"] >= 0 for v in seen], 0.0),
            "gate": pick(gated, ALPHA_PREVIEW if gate.reads_index else 0.0),
            "oracle": [max(x, y) for x, y in zip(searched, answered, strict=True)],
        }
        best = max(FIXED, key=lambda name: mean(rewards[name]))
        table[variant] = {
            "n": len(ids),
            "best_fixed": best,
            "gate_retrieval_rate": mean([float(g) for g in gated]),
            **{
                name: {
                    "reward": mean(r),
                    "vs_best_fixed": mean(r) - mean(rewards[best]),
                    "se": paired_se(r, rewards[best]),
                }
                for name, r in rewards.items()
            },
        }
        row = "  ".join(f"{name} {mean(r):+.3f}" for name, r in rewards.items())
        print(f"{variant} (n={len(ids)}, best fixed: {best}): {row}")
        gap = table[variant]["gate"]
        print(
            f"    gate - {best} = {gap['vs_best_fixed']:+.3f} ± {gap['se']:.3f}; retrieval rate "
            f"{table[variant]['gate_retrieval_rate']:.2f}"
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "gate": args.gate,
                "features": gate.features[:8],
                "score_threshold": threshold,
                "table": table,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
