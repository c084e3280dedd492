"""How far did training move each kind of question's P(search)? Mean P(search) of several policies, per group.

    python benchmarks/search_shift.py langchain_smartrag/adapters/smartrag-smollm2-135m runs/a/final runs/b/final \
        [--per-group 64] [--split train] [--output shift.json]

The same seeded questions for every policy, in groups a search pays for differently: PopQA with its subject in the
bundled corpus and without, AmbigNQ, HotpotQA with its evidence in the corpus. One prefill per question, no text
generated (`SmartRAGPolicy.search_probability_batch`), in fp32 unless the hardware has fast bf16.
"""

from __future__ import annotations

import argparse
import json
import time

from langchain_smartrag import SmartRAGPolicy
from training import dataset_path, load_qa, sample
from training.ppo import covered

GROUPS = {  # name: (data set, keep: None all, True covered, False not covered)
    "popqa covered": ("popqa", True),
    "popqa not covered": ("popqa", False),
    "ambignq": ("ambignq", None),
    "hotpotqa covered": ("hotpotqa", True),
}


def questions(split: str, per_group: int, seed: int) -> dict[str, list[str]]:
    out = {}
    for name, (dataset, keep) in GROUPS.items():
        examples = [e for e in load_qa(dataset_path(dataset, split)) if keep is None or covered(e) == keep]
        out[name] = [e.question for e in sample(examples, per_group, seed=seed)]
    return out


def mean_p_search(policy: SmartRAGPolicy, groups: dict[str, list[str]], batch: int = 32) -> dict[str, float]:
    out = {}
    for name, texts in groups.items():
        prompts = [policy.prompt(q) for q in texts]
        p = [x for first in range(0, len(prompts), batch) for x in policy.search_probability_batch(prompts[first : first + batch])]
        out[name] = sum(p) / len(p)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="adapter directories, `embedded` or `embedded-base`")
    parser.add_argument("--per-group", type=int, default=64)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()
    groups = questions(args.split, args.per_group, args.seed)
    rows = []
    print("| policy | " + " | ".join(GROUPS) + " |\n|---|" + "---|" * len(GROUPS))
    for source in args.policies:
        start = time.perf_counter()
        means = mean_p_search(SmartRAGPolicy.load(source), groups)
        rows.append({"policy": source, "p_search": means, "seconds": time.perf_counter() - start})
        print(f"| {source} | " + " | ".join(f"{means[g]:.3f}" for g in GROUPS) + " |", flush=True)
    if args.output:
        with open(args.output, "w") as file:
            json.dump({"split": args.split, "per_group": args.per_group, "seed": args.seed, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
