"""What reading rows cost the closed-book turn: closed-book EM/F1 and P(search) of several policies on the same dev
questions of every data set the reproduction table uses, with paired differences against the first policy.

    HF_HUB_OFFLINE=1 python experiments/reading/closed_book.py --policies embedded runs/sft-reading/final \
        [--n 300] [--output experiments/reading/results/closed_book.json]

The questions are the reproduction benchmark's dev sample (`benchmarks/reproduce.py`: seed 0, first `--n`). Each
policy answers each question with the answer forced and no documents (the no-retrieval episode's one turn, through
the one prompt format) and scores P(search) on the same first prompt (the action token's decision; searches at 0.5).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared import DATA_SETS

from langchain_smartrag import ANSWER, SmartRAGPolicy, parse_action
from langchain_smartrag.scoring import exact_match, f1_score
from langchain_smartrag.training import dataset_path, load_qa, sample
from langchain_smartrag.training.strategies import paired_se


def closed_book(policy: SmartRAGPolicy, questions: list[str], batch: int = 32) -> tuple[list[str], list[float]]:
    """Each question's forced closed-book answer and its first P(search)."""
    answers, p_search = [], []
    for first in range(0, len(questions), batch):
        prompts = [policy.prompt(q) for q in questions[first : first + batch]]
        p_search += policy.search_probability_batch(prompts)
        answers += [parse_action(ANSWER + g.text).text for g in policy.generate_batch(prompts, ANSWER)]
    return answers, p_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--policies", nargs="+", required=True, help="SmartRAGPolicy.load sources; the first is the reference"
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--output", type=Path, default=Path("experiments/reading/results/closed_book.json"))
    args = parser.parse_args()

    sets = {}
    for variant, (data, keep) in DATA_SETS.items():
        examples = sample([e for e in load_qa(dataset_path(data, "dev")) if keep is None or keep(e)], args.n, seed=0)
        sets[variant] = examples
    results: dict[str, dict[str, dict]] = {variant: {} for variant in sets}
    for source in args.policies:
        policy = SmartRAGPolicy.load(source)
        for variant, examples in sets.items():
            answers, p_search = closed_book(policy, [e.question for e in examples])
            results[variant][source] = {
                "em": [exact_match(a, e.answers) for a, e in zip(answers, examples, strict=True)],
                "f1": [f1_score(a, e.answers) for a, e in zip(answers, examples, strict=True)],
                "p_search": p_search,
                "answers": answers,
            }
            print(
                f"{variant:28s} {source:32s} closed-book EM {sum(results[variant][source]['em']) / len(examples):.3f}"
            )

    reference = args.policies[0]
    lines = [
        "| data set | n | "
        + " | ".join(f"{p}: EM / F1 / searches at 0.5" for p in args.policies)
        + " | EM vs first ± SE |",
        "|---|---:|" + "---:|" * (len(args.policies) + 1),
    ]
    table = {}
    for variant, by_policy in results.items():
        n = len(sets[variant])
        row = {
            source: {
                "em": sum(r["em"]) / n,
                "f1": sum(r["f1"]) / n,
                "search_rate": sum(p >= 0.5 for p in r["p_search"]) / n,
            }
            for source, r in by_policy.items()
        }
        diffs = {
            source: {
                "em_diff": row[source]["em"] - row[reference]["em"],
                "se": paired_se(by_policy[source]["em"], by_policy[reference]["em"]),
            }
            for source in args.policies[1:]
        }
        table[variant] = {"n": n, "policies": row, "vs_first": diffs}
        cells = " | ".join(f"{r['em']:.3f} / {r['f1']:.3f} / {r['search_rate']:.2f}" for r in row.values())
        vs = ", ".join(f"{d['em_diff']:+.3f} ± {d['se']:.3f}" for d in diffs.values())
        lines.append(f"| {variant} | {n} | {cells} | {vs} |")
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "machine": platform.machine(),
                "policies": args.policies,
                "table": table,
                "markdown": "\n".join(lines),
                "answers": {v: {s: r["answers"] for s, r in by.items()} for v, by in results.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
