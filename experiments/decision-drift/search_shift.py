"""How far did training move each kind of question's P(search)? Mean P(search) of several policies, per group.

    python experiments/decision-drift/search_shift.py langchain_smartrag/adapters/smartrag-smollm2-135m \
        runs/a/final runs/b/final [--per-group 64] [--split train] [--exclude runs/warmup.jsonl] [--output shift.json]
    python experiments/decision-drift/search_shift.py POLICIES... --rollouts runs/first-update/c09 --iteration 2

The same seeded questions for every policy, in groups a search pays for differently: PopQA with its subject in the
bundled corpus and without, AmbigNQ, HotpotQA with its evidence in the corpus, PopQA by template (the ones the
corpus mostly covers, the rest). One prefill per question, no text
generated (`SmartRAGPolicy.search_probability_batch`), in fp32 unless the hardware has fast bf16.
With `--rollouts`, instead: each question a paired run trained on in `--iteration`, its search-minus-answer reward
gap, and every policy's P(search) on it (did the update move each question the way its own gap says?).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import logit, mostly_covered_templates, paired_episodes

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.training import QAExample, dataset_path, load_qa, sample
from langchain_smartrag.training.questions import covered
from langchain_smartrag.training.warmup import warmup_ids

PAYING = mostly_covered_templates()
GROUPS: dict[str, tuple[str, Callable[[QAExample], bool]]] = {  # name: (data set, which of its questions)
    "popqa covered": ("popqa", covered),
    "popqa not covered": ("popqa", lambda e: not covered(e)),
    "ambignq": ("ambignq", lambda e: True),
    "hotpotqa covered": ("hotpotqa", covered),
    "popqa, mostly covered templates": ("popqa", lambda e: e.extra["prop"] in PAYING),
    "popqa, other templates": ("popqa", lambda e: e.extra["prop"] not in PAYING),
}
"""The last two: "place of birth" and "occupation" (corpus coverage >= 50% on train) and the rest (0-26%)."""


def questions(split: str, per_group: int, seed: int, exclude: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Each group's seeded sample, leaving out the question ids in `exclude` (e.g. what an SFT run trained on)."""
    out = {}
    for name, (dataset, keep) in GROUPS.items():
        examples = [e for e in load_qa(dataset_path(dataset, split)) if keep(e) and e.id not in exclude]
        out[name] = [e.question for e in sample(examples, per_group, seed=seed)]
    return out


def p_search(policy: SmartRAGPolicy, texts: list[str], batch: int = 32) -> list[float]:
    """P(search) at each question's decision prompt, `batch` prompts a pass."""
    prompts = [policy.prompt(q) for q in texts]
    return [
        p
        for first in range(0, len(prompts), batch)
        for p in policy.search_probability_batch(prompts[first : first + batch])
    ]


def mean_p_search(policy: SmartRAGPolicy, groups: dict[str, list[str]]) -> dict[str, float]:
    return {name: sum(p_search(policy, texts)) / len(texts) for name, texts in groups.items()}


def per_question(policies: list[str], run: str, iteration: int) -> list[dict]:
    """The run's paired questions of `iteration` with their gap and each policy's P(search)."""
    pairs = [(s, a) for i, s, a in paired_episodes(run) if i == iteration]
    rows = [{"id": s["id"], "question": s["question"], "gap": s["reward"] - a["reward"]} for s, a in pairs]
    for source in policies:
        for row, p in zip(rows, p_search(SmartRAGPolicy.load(source), [r["question"] for r in rows]), strict=True):
            row[source] = p
    print(
        f"| gap | {' | '.join(policies)} | logit change, last vs first | question |\n|---|"
        + "---|" * (len(policies) + 2)
    )
    for row in sorted(rows, key=lambda r: r["gap"]):
        change = logit(row[policies[-1]]) - logit(row[policies[0]])  # how far the last policy moved from the first
        print(
            f"| {row['gap']:+.2f} | "
            + " | ".join(f"{row[p]:.3f}" for p in policies)
            + f" | {change:+.2f} | {row['question'][:60]} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="adapter directories, `embedded` or `embedded-base`")
    parser.add_argument("--per-group", type=int, default=64)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    parser.add_argument("--exclude", help="warm-up JSONL: leave out the questions it holds (the SFT data)")
    parser.add_argument("--rollouts", help="a paired run: its questions of --iteration instead of the groups")
    parser.add_argument("--iteration", type=int, default=2)
    args = parser.parse_args()
    if args.rollouts:
        rows = per_question(args.policies, args.rollouts, args.iteration)
        if args.output:
            with open(args.output, "w") as file:
                json.dump({"rollouts": args.rollouts, "iteration": args.iteration, "rows": rows}, file, indent=1)
        return
    exclude = warmup_ids(args.exclude) if args.exclude else frozenset()
    groups = questions(args.split, args.per_group, args.seed, exclude)
    rows = []
    print("| policy | " + " | ".join(GROUPS) + " |\n|---|" + "---|" * len(GROUPS))
    for source in args.policies:
        start = time.perf_counter()
        means = mean_p_search(SmartRAGPolicy.load(source), groups)
        rows.append({"policy": source, "p_search": means, "seconds": time.perf_counter() - start})
        print(f"| {source} | " + " | ".join(f"{means[g]:.3f}" for g in GROUPS) + " |", flush=True)
    if args.output:
        with open(args.output, "w") as file:
            json.dump(
                {
                    "split": args.split,
                    "per_group": args.per_group,
                    "seed": args.seed,
                    "exclude": args.exclude,
                    "rows": rows,
                },
                file,
                indent=1,
            )


if __name__ == "__main__":
    main()
