"""Can one PopQA decision win both PopQA rows? What decisions that read only the question's template would score.

    python experiments/warmup-mix/template_rule.py [--results benchmarks/results/reproduce] [--min-coverage 0.5]

The reproduce table has two PopQA rows: the questions whose subject the bundled corpus holds, and all of them.
A search pays on the first and costs on most of the second, and a question does not say whether the corpus holds
its subject, except through its template ("In what city was X born?" is covered for 95% of train questions,
"Who was the director of X?" for 2%). From `reproduce.py`'s forced runs (each question played with and without
a search, same weights), per policy and PopQA row:

- template rule: search iff the template's subject coverage on the *train* split is at least `--min-coverage`
  (chosen on train only: a decision a policy could learn);
- best per template: each template's better action on *this* dev set (chosen on the data it scores, so an upper
  bound for any decision that reads the template alone, not a result);
- corpus oracle: search iff the corpus holds the subject (a decision that could look into the corpus).

Then the one template set, the same on both rows, that scores best on the covered row while still beating
no-retrieval's `--bar` on all of PopQA (again chosen on dev: how much room a template-level decision has at best).
Prints Markdown; the README quotes it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import ROOT, mostly_covered_templates, result_path

from langchain_smartrag.training import QAExample, dataset_path, load_qa, means

ROWS = ("PopQA (subject in corpus)", "PopQA (all)")


def template_gains(pairs: list[tuple[dict, dict]], dev: dict[str, QAExample]) -> dict[str, float]:
    """Per template, what searching its questions adds to the mean reward of never searching."""
    gains: dict[str, float] = defaultdict(float)
    for searched, answered in pairs:
        gains[dev[searched["id"]].extra["prop"]] += (searched["reward"] - answered["reward"]) / len(pairs)
    return dict(gains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="benchmarks/results/reproduce")
    parser.add_argument("--min-coverage", type=float, default=0.5)
    parser.add_argument("--bar", type=float, default=0.100, help="the best baseline's reward on PopQA (all)")
    args = parser.parse_args()
    results = ROOT / args.results
    searched = mostly_covered_templates(args.min_coverage)
    dev = {e.id: e for e in load_qa(dataset_path("popqa", "dev"))}
    print(
        f"Template rule: search for {', '.join(sorted(searched))} (train coverage "
        + ", ".join(f"{searched[p]:.0%}" for p in sorted(searched))
        + "); every other template answers closed-book.\n"
    )
    print(
        "| PopQA row | n | policy | no-retrieval | always-retrieve | policy at 0.5 | template rule "
        "| best per template (bound) | corpus oracle |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    never: dict[tuple[str, str], float] = {}
    gains: dict[tuple[str, str], dict[str, float]] = {}
    for row in ROWS:
        for policy in ("sft", "smartrag"):
            runs = {
                mode: json.loads(result_path(results, row, policy, mode).read_text())["records"]
                for mode in ("always-retrieve", "no-retrieval")
            }
            pairs = list(zip(runs["always-retrieve"], runs["no-retrieval"], strict=True))
            no_retrieval = means([b for _, b in pairs])
            never[row, policy] = no_retrieval["reward"]
            gains[row, policy] = template_gains(pairs, dev)
            cells = [
                no_retrieval,
                means([a for a, _ in pairs]),
                means([a if a["search_probabilities"][0] >= 0.5 else b for a, b in pairs]),
                means([a if dev[a["id"]].extra["prop"] in searched else b for a, b in pairs]),
                {"reward": never[row, policy] + sum(max(g, 0.0) for g in gains[row, policy].values())},
                means([a if dev[a["id"]].extra["subject_in_local_corpus"] else b for a, b in pairs]),
            ]
            print(
                f"| {row} | {len(pairs)} | {policy} | "
                + " | ".join(
                    f"{c['reward']:.3f}" + (f" ({c['retrieval_rate']:.2f})" if "retrieval_rate" in c else "")
                    for c in cells
                )
                + " |"
            )
    print()
    for policy in ("sft", "smartrag"):

        def reward(row: str, chosen: tuple[str, ...], policy: str = policy) -> float:
            return never[row, policy] + sum(gains[row, policy].get(p, 0.0) for p in chosen)

        templates = sorted(set(gains[ROWS[0], policy]) | set(gains[ROWS[1], policy]))
        subsets = (c for k in range(len(templates) + 1) for c in itertools.combinations(templates, k))
        best = max((s for s in subsets if reward(ROWS[1], s) > args.bar), key=lambda s: reward(ROWS[0], s))
        print(
            f"- {policy}: best joint template set (chosen on dev) searches {len(best)} templates "
            f"({', '.join(best)}): {ROWS[0]} {reward(ROWS[0], best):.3f}, {ROWS[1]} {reward(ROWS[1], best):.3f}"
        )


if __name__ == "__main__":
    main()
