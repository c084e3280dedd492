"""Every first-decision strategy on the dev sets, from the paired dev episodes the reproduction benchmark recorded.

    HF_HUB_OFFLINE=1 python experiments/gate/dev_table.py --gate runs/gate \
        --output experiments/gate/results/dev_table.json
    HF_HUB_OFFLINE=1 python experiments/gate/dev_table.py --gate runs/gate-reading \
        --policy runs/sft-reading-given/final --records runs/reproduce-given \
        --output experiments/reading/results/gate_dev_table.json

At a quota of one retrieval a question's episode under any first decision is one of its two forced episodes
(`benchmarks/results/reproduce/*--smartrag--{always-retrieve,no-retrieval}.json`, the shipped adapter, greedy; or
`--records` from `reproduce.py --smartrag ADAPTER --out DIR` with that adapter as `--policy`), so
each strategy's reward is read off them by `langchain_smartrag.training.strategies` (what `smartrag eval --compare`
prints): never, always-retrieve, the title rule, the score rule (its threshold tuned on the gate's train pairs, saved
in gate.json), the action token at 0.5, the gate at its own threshold, and the oracle (the better episode). Paired
standard errors are against the best of never, always-retrieve and the two rules on each set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared import DATA_SETS, ROOT, forced_pairs

from langchain_smartrag import BM25Retriever, DecisionGate, SmartRAGPolicy
from langchain_smartrag.scoring import ALPHA_PREVIEW
from langchain_smartrag.training.gate import decision_features
from langchain_smartrag.training.strategies import strategy_rewards, strategy_table

RECORDS = ROOT / "benchmarks" / "results" / "reproduce"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", required=True, help="folder holding gate.json (from `smartrag train gate`)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--policy", help="as SmartRAGPolicy.load reads it (default: the shipped embedded policy)")
    parser.add_argument("--records", type=Path, default=RECORDS, help="the reproduction's results folder")
    args = parser.parse_args()
    gate = DecisionGate.load(args.gate)
    if gate is None:
        raise SystemExit(f"no gate.json in {args.gate}")
    threshold = gate.trained_under.get("score_rule_threshold")
    policy, retriever = SmartRAGPolicy.load(args.policy), BM25Retriever.bundled(k=4)
    table = {}
    for variant in DATA_SETS:
        questions, searched, answered = forced_pairs(args.records, variant)
        rows = decision_features(policy, retriever, questions)
        rewards = strategy_rewards(
            searched,
            answered,
            rows,
            probe_cost=ALPHA_PREVIEW,
            gate=gate,
            score_threshold=threshold,
        )
        gated = [gate.p_search(**r) >= gate.threshold for r in rows]
        table[variant] = {**strategy_table(rewards), "gate_retrieval_rate": sum(gated) / len(gated)}
        row = "  ".join(f"{name} {s['reward']:+.3f}" for name, s in table[variant]["strategies"].items())
        best = table[variant]["best_fixed"]
        print(f"{variant} (n={len(questions)}, best fixed: {best}): {row}")
        gap = table[variant]["strategies"]["gate"]
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
