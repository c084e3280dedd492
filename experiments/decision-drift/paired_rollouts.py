"""What a paired-decision PPO run saw and learned, read from its `rollouts.jsonl` (train questions only).

    python experiments/decision-drift/paired_rollouts.py runs/smartrag-paired [--groups 3]

Every question of a `paired_decisions` run was played both ways, so each gives a search-minus-answer return
(the decision's signal) and the policy's P(search) at that time. Rows: each data set, and PopQA split by
whether the corpus holds the subject and by question template (coverage is a template matter: 95% of
"place of birth" subjects, 1% of "producer" ones). Columns: mean search-minus-answer reward over the run,
then mean P(search) in consecutive groups of iterations: does the decision follow the signal, per row?
For runs that log each decision's P(search) after its iteration's update (`p_search_after`), a second table: per
iteration, how far the update moved the logit of the decisions a search paid for, and of the others.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from statistics import correlation, mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import logit, paired_episodes

from langchain_smartrag.training import dataset_path, load_qa
from langchain_smartrag.training.questions import covered


def rows_of(question_id: str, popqa: dict) -> list[str]:
    """The table rows a question counts in."""
    name = question_id.split("-")[0]
    if name != "popqa":
        return [name]
    example = popqa[question_id]
    return [
        "popqa",
        f"popqa, corpus {'has' if covered(example) else 'lacks'} subject",
        f"popqa: {example.extra['prop']}",
    ]


def update_shifts(pairs: list[tuple[int, dict, dict]]) -> None:
    """Per iteration: the mean change of the decision's logit in its update, where the search paid and where it did not,
    and the correlation of each question's change with its own search-minus-answer gap."""
    print(
        "| iteration | questions | search paid | logit change, search paid | logit change, the others "
        "| corr(gap, change) |"
    )
    print("|---" * 6 + "|")
    for iteration in sorted({i for i, _, _ in pairs}):
        rows = [
            (s["reward"] - a["reward"], logit(s["p_search_after"]) - logit(s["search_probabilities"][0]))
            for i, s, a in pairs
            if i == iteration and s.get("p_search_after") is not None
        ]
        if len(rows) < 2:
            continue
        paid = [change for gap, change in rows if gap > 0]
        others = [change for gap, change in rows if gap <= 0]
        gaps, changes = zip(*rows, strict=True)
        r = f"{correlation(gaps, changes):+.2f}" if len(set(gaps)) > 1 and len(set(changes)) > 1 else "-"
        print(
            f"| {iteration} | {len(rows)} | {len(paid)} | {f'{mean(paid):+.2f}' if paid else '-'} | "
            f"{f'{mean(others):+.2f}' if others else '-'} | {r} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--groups", type=int, default=3)
    args = parser.parse_args()
    popqa = {e.id: e for e in load_qa(dataset_path("popqa", "train"))}
    pairs = paired_episodes(args.run)
    last = max(iteration for iteration, _, _ in pairs)
    size = -(-last // args.groups)
    gain, p_search = defaultdict(list), defaultdict(lambda: defaultdict(list))
    for iteration, searched, answered in pairs:
        for row in rows_of(searched["id"], popqa):
            gain[row].append(searched["reward"] - answered["reward"])
            p_search[row][(iteration - 1) // size].append(searched["search_probabilities"][0])
    spans = [
        f"it. {g * size + 1}" + (f"-{end}" if (end := min((g + 1) * size, last)) > g * size + 1 else "")
        for g in range(args.groups)
    ]
    print("| rows | questions | search - answer reward | " + " | ".join(f"P(search) {s}" for s in spans) + " |")
    print("|---" * (3 + args.groups) + "|")
    for row in sorted(gain, key=lambda r: (r.split(":")[0], -len(gain[r]))):
        if len(gain[row]) < 10:
            continue
        cells = [f"{sum(v) / len(v):.2f}" if (v := p_search[row][g]) else "" for g in range(args.groups)]
        print(f"| {row} | {len(gain[row])} | {sum(gain[row]) / len(gain[row]):+.2f} | " + " | ".join(cells) + " |")
    if any(s.get("p_search_after") is not None for _, s, _ in pairs):
        print()
        update_shifts(pairs)


if __name__ == "__main__":
    main()
