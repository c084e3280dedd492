"""A gate that reads the reader, fit on the train drafts and scored on every dev set and the own index.

    python experiments/gate/reader_gate.py --drafts runs/reader-drafts \
        --output experiments/gate/results/reader_gate.json --save-to runs/reader-gate

Reads `reader_drafts.py`'s pairs (train, dev, own-index). Per question the probe has been made and the policy has
drafted two answers, closed book and over the probe's hits; the gate picks one. Fit as `smartrag train gate --reader`
fits (`training.gate.gate_from_drafts`: a head chosen by 5-fold cross-validation among the reader's feature families
on 75% of the train pairs, its threshold on the other 25%, refit on all). Dev columns, through
`training.strategies` as `smartrag eval --compare` prints them: never (closed book), always-retrieve (retrieve-then-
read with the question: the draft over the probe's hits), the title rule, the score rule (threshold tuned on train),
the action token at 0.5, the gate, the oracle (the better draft); and beside them the policy's own search episode
(its rewritten query; the forced run in `--records`), also a fixed strategy. Paired standard errors are against the
best fixed strategy of each set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared import ROOT, result_path

from langchain_smartrag.scoring import ALPHA_PREVIEW, exact_match
from langchain_smartrag.training.gate import gate_from_drafts
from langchain_smartrag.training.pairs import read_pairs
from langchain_smartrag.training.strategies import FIXED, paired_se, strategy_rewards

RECORDS = ROOT / "experiments" / "reading" / "results" / "reproduce"
REWRITTEN = "search (rewritten query)"


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def table(pairs: list[dict[str, Any]], gate: Any, rewritten: list[float] | None = None) -> dict[str, Any]:
    """Every strategy's mean reward on one set against the best fixed one (± paired SE), and what the gate did."""
    rows = [p["features"] for p in pairs]
    rewards = strategy_rewards(
        [p["search"]["reward"] for p in pairs],
        [p["answer"]["reward"] for p in pairs],
        rows,
        probe_cost=ALPHA_PREVIEW,
        gate=gate,
        score_threshold=gate.trained_under.get("score_rule_threshold"),
    )
    if rewritten is not None:
        rewards[REWRITTEN] = rewritten
    best = max((k for k in (*FIXED, REWRITTEN) if k in rewards), key=lambda k: mean(rewards[k]))
    searched = [gate.p_search(**r) >= gate.threshold for r in rows]
    return {
        "n": len(pairs),
        "best_fixed": best,
        "gate_searched": mean([float(s) for s in searched]),
        "gate_em": mean(
            [exact_match(p["search" if s else "answer"]["answer"], p["golds"]) for p, s in zip(pairs, searched)]
        ),
        "strategies": {
            k: {"reward": mean(r), "vs_best_fixed": mean(r) - mean(rewards[best]), "se": paired_se(r, rewards[best])}
            for k, r in rewards.items()
        },
    }


def own_index(pairs: list[dict[str, Any]], gate: Any) -> dict[str, Any]:
    """Per kind (domain: the invented facts; general): how often the gate searches, and the EM of the gate, of
    always-retrieve and of never."""
    out: dict[str, Any] = {}
    for kind in ("domain", "general"):
        chosen = [(p, gate.p_search(**p["features"]) >= gate.threshold) for p in pairs if p["extra"]["kind"] == kind]
        em = {
            "gate_em": [exact_match(p["search" if s else "answer"]["answer"], p["golds"]) for p, s in chosen],
            "always_em": [exact_match(p["search"]["answer"], p["golds"]) for p, _ in chosen],
            "never_em": [exact_match(p["answer"]["answer"], p["golds"]) for p, _ in chosen],
        }
        out[kind] = {"n": len(chosen), "searched": mean([float(s) for _, s in chosen])} | {
            k: mean(v) for k, v in em.items()
        }
    out["all"] = table(pairs, gate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drafts", type=Path, required=True, help="reader_drafts.py's folder (train, dev, own-index)")
    parser.add_argument("--records", type=Path, default=RECORDS, help="the reproduction's forced runs, same weights")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--save-to", type=Path, help="also save the fitted gate.json here")
    args = parser.parse_args()
    train = read_pairs(args.drafts / "train.jsonl")
    gate, report = gate_from_drafts(train, trained_under={"pairs": str(args.drafts / "train.jsonl")})
    print(
        f"fit on {len(train)}: {report['candidate']} threshold {report['threshold']:.2f}; held-out AUC "
        f"{report['held_out_auc']:.3f}, oracle gap closed {report['held_out_oracle_share']:.2f}"
    )
    dev = read_pairs(args.drafts / "dev.jsonl")
    tables = {}
    for variant in dict.fromkeys(p["extra"]["set"] for p in dev):
        pairs = [p for p in dev if p["extra"]["set"] == variant]
        forced = json.loads(result_path(args.records, variant, "smartrag", "always-retrieve").read_text())["records"]
        by_id = {r["id"]: r["reward"] for r in forced}
        t = tables[variant] = table(pairs, gate, [by_id[p["extra"]["id"]] for p in pairs])
        g = t["strategies"]["gate"]
        print(
            f"{variant} (n={t['n']}, best {t['best_fixed']}): "
            + "  ".join(f"{k} {x['reward']:+.3f}" for k, x in t["strategies"].items())
            + f"\n    gate - best = {g['vs_best_fixed']:+.3f} ± {g['se']:.3f}, searched {t['gate_searched']:.2f}"
        )
    own = own_index(read_pairs(args.drafts / "own-index.jsonl"), gate)
    print("own index:", json.dumps({k: v for k, v in own.items() if k != "all"}))
    if args.save_to:
        print(gate.save(args.save_to))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "gate": vars(gate),
        "fit": report,
        "dev": tables,
        "own_index": own,
    }
    args.output.write_text(json.dumps(result, indent=1, default=vars))


if __name__ == "__main__":
    main()
