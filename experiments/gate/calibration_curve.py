"""How many labelled questions of a user's own `smartrag calibrate` needs: the gate calibrated on 50, 100 and 200
questions of one kind (train), scored on the same kind's dev questions.

    HF_HUB_OFFLINE=1 python experiments/gate/calibration_curve.py --gate runs/gate-reading \
        --policy runs/sft-reading-given/final --pairs runs/gate-reading/calibration-pairs.jsonl \
        --records runs/reproduce-given --set "PopQA (subject in corpus)" \
        --output experiments/reading/results/calibration_curve.json

The user's labelled questions are train questions played both ways (`play_pairs.py --split train --datasets
popqa-covered`, none of the gate's own pairs). Each size is drawn `--draws` times (seeded) and calibrated by
`training.gate.calibrate`, what `smartrag calibrate` runs. The dev questions are the reproduction's paired episodes,
read as `dev_table.py` reads them, and no choice is made on them: per size, the calibrated gate's mean reward and
its spread over draws, against the gate as trained and the fixed strategies.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared import DATA_SETS, forced_pairs

from langchain_smartrag import BM25Retriever, DecisionGate, SmartRAGPolicy
from langchain_smartrag.scoring import ALPHA_PREVIEW
from langchain_smartrag.training.gate import calibrate, decision_features
from langchain_smartrag.training.pairs import read_pairs
from langchain_smartrag.training.strategies import FIXED, strategy_rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", required=True, help="folder holding gate.json (from `smartrag train gate`)")
    parser.add_argument("--policy", help="as SmartRAGPolicy.load reads it (default: the shipped embedded policy)")
    parser.add_argument("--pairs", required=True, help="the user's labelled questions, played both ways (JSONL)")
    parser.add_argument("--records", type=Path, required=True, help="the reproduction's results folder (dev pairs)")
    parser.add_argument("--set", default="PopQA (subject in corpus)", choices=list(DATA_SETS), help="the dev set")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--draws", type=int, default=10, help="seeded draws of the labelled questions per size")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    gate = DecisionGate.load(args.gate)
    if gate is None:
        raise SystemExit(f"no gate.json in {args.gate}")
    policy, retriever = SmartRAGPolicy.load(args.policy), BM25Retriever.bundled(k=4)
    pool = read_pairs(args.pairs)
    pool_rows = decision_features(policy, retriever, [p["question"] for p in pool])
    questions, searched, answered = forced_pairs(args.records, args.set)
    dev_rows = decision_features(policy, retriever, questions)
    score_threshold = gate.trained_under.get("score_rule_threshold")

    def on_dev(g: DecisionGate) -> dict[str, float]:
        rewards = strategy_rewards(
            searched, answered, dev_rows, probe_cost=ALPHA_PREVIEW, gate=g, score_threshold=score_threshold
        )
        p = [g.p_search(**r) for r in dev_rows]
        searches = [x >= g.threshold for x in p]
        return {
            **{name: statistics.fmean(values) for name, values in rewards.items()},
            "gate_retrieval_rate": sum(searches) / len(searches),
        }

    trained = on_dev(gate)
    best_fixed = max((name for name in FIXED if name in trained), key=trained.get)
    print(f"{args.set} dev (n={len(questions)}): " + ", ".join(f"{k} {v:.3f}" for k, v in trained.items()))
    curve = {}
    for size in args.sizes:
        if size > len(pool):
            print(f"{size}: only {len(pool)} labelled questions in {args.pairs}; skipped")
            continue
        draws = []
        for draw in range(args.draws):
            chosen = random.Random(f"{size}/{draw}").sample(range(len(pool)), size)
            calibrated, report = calibrate(
                gate, [pool_rows[i] for i in chosen], [pool[i] for i in chosen], probe_cost=ALPHA_PREVIEW, seed=draw
            )
            dev = on_dev(calibrated)
            draws.append(
                {
                    "chosen": report["chosen"],
                    "threshold": calibrated.threshold,
                    "reward": dev["gate"],
                    "retrieval_rate": dev["gate_retrieval_rate"],
                }
            )
        rewards = [d["reward"] for d in draws]
        curve[size] = {
            "reward": statistics.fmean(rewards),
            "sd": statistics.stdev(rewards) if len(rewards) > 1 else 0.0,
            "retrieval_rate": statistics.fmean(d["retrieval_rate"] for d in draws),
            "above_best_fixed": sum(r > trained[best_fixed] for r in rewards),
            "draws": draws,
        }
        print(
            f"{size} labelled: reward {curve[size]['reward']:.3f} ± {curve[size]['sd']:.3f} (sd over {args.draws} "
            f"draws), retrieval rate {curve[size]['retrieval_rate']:.2f}; above {best_fixed} "
            f"({trained[best_fixed]:.3f}) in {curve[size]['above_best_fixed']} of {args.draws}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "gate": args.gate,
                "policy": args.policy or "embedded",
                "pairs": args.pairs,
                "set": args.set,
                "dev_questions": len(questions),
                "as_trained": trained,
                "best_fixed": best_fixed,
                "curve": curve,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
