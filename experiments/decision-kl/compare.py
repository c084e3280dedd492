"""Trained policies side by side on dev data: EM, F1, retrieval rate and reward in smartrag mode.

    python experiments/decision-kl/compare.py SFT=runs/sft-embedded/final PPO=runs/ppo-embedded/final \
        [--n 128] [--out DIR]
    python experiments/decision-kl/compare.py OLD=DIR NEW=DIR \
        --validation langchain_smartrag/training/configs/smartrag_paired.yaml --out DIR

Each NAME=DIR is a peft adapter (or model) directory. Data sets: the PopQA dev questions whose subject the
bundled corpus holds, and HotpotQA dev (every question has its paragraphs in the corpus); the same seeded
sample of `--n` questions for every policy, BM25 k=4 over the bundled corpus, threshold 0.5, greedy.
One results JSON per (data set, policy) under `--out` (an existing file is reused: reruns resume);
prints a markdown table, whose last column is each policy's per-question reward minus the first policy's (mean
and paired standard error). With `--validation CONFIG`: instead, the train questions that PPO config holds out
for model selection (so adapters can be chosen between without looking at dev); `--exclude WARMUP.jsonl` leaves
out the questions an SFT run trained on, `--per-dataset N` holds out N per data set instead of the config's number,
`--seed S` draws them with another seed (a warm-up drawn with the config's seed holds the same questions).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

from _shared import VARIANTS, slug

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.training import dataset_path, evaluate, load_qa, sample
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.questions import hold_out, load_questions, validation_seed
from langchain_smartrag.training.warmup import warmup_ids

DATA_SETS = ("PopQA (subject in corpus)", "HotpotQA")


def paired_difference(before: list[dict], after: list[dict]) -> tuple[float, float]:
    """Mean per-question reward difference (after - before) over the questions both answered, and its standard error."""
    rewards = {r["id"]: r["reward"] for r in before}
    gaps = [r["reward"] - rewards[r["id"]] for r in after if r["id"] in rewards]
    mean = sum(gaps) / len(gaps)
    spread = (sum((g - mean) ** 2 for g in gaps) / max(len(gaps) - 1, 1)) ** 0.5
    return mean, spread / len(gaps) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policies", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--out", default="experiments/decision-kl/results/compare")
    parser.add_argument("--validation", metavar="PPO_CONFIG", help="compare on this PPO config's held-out questions")
    parser.add_argument("--exclude", help="warm-up JSONL: leave out the questions it holds (the SFT data)")
    parser.add_argument(
        "--per-dataset",
        type=int,
        help="with --validation: hold out this many per data set, not the "
        "config's (more questions, but those beyond the config's own were open to its PPO run)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="with --validation: hold out with this seed, not the config's (a "
        "sample apart from a warm-up drawn with that seed)",
    )
    args = parser.parse_args()
    exclude = warmup_ids(args.exclude) if args.exclude else frozenset()
    if args.validation:
        import yaml

        config = PPOConfig(**yaml.safe_load(Path(args.validation).read_text()))
        config.validation_per_dataset = args.per_dataset or config.validation_per_dataset
        sets = load_questions(config.data, config.datasets, config.split, config.covered_only)
        held = hold_out(
            sets, config.validation_per_dataset, validation_seed(config) if args.seed is None else args.seed
        )[1]
        question_sets = {"validation (held-out train)": [e for e in held if e.id not in exclude]}
    else:
        question_sets = {
            variant: sample(
                [e for e in load_qa(dataset_path(data, "dev")) if (keep is None or keep(e)) and e.id not in exclude],
                args.n,
                seed=0,
            )
            for variant, (data, keep) in VARIANTS.items()
            if variant in DATA_SETS
        }
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    retriever = BM25Retriever.bundled(k=4)
    rows = [
        "| data set | n | policy | EM | F1 | retrieval rate | reward | hit | reward - first's (paired SE) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first: dict[str, list[dict]] = {}
    for spec in args.policies:
        name, directory = spec.split("=", 1)
        policy = None
        for variant, examples in question_sets.items():
            path = out / f"{slug(variant)}--{slug(name)}.json"
            if not path.exists():
                policy = policy or SmartRAGPolicy.from_pretrained(directory)
                results = evaluate(
                    create_smartrag_graph(policy, retriever),
                    examples,
                    threshold=args.threshold,
                    config={"variant": variant, "k": 4, "policy": directory},
                )
                path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
            r = json.loads(path.read_text())
            hit = "-" if r["hit"] is None else f"{r['hit']:.2f}"
            if variant in first:
                gain = "{:+.3f} ({:.3f})".format(*paired_difference(first[variant], r["records"]))
            else:
                first[variant], gain = r["records"], "-"
            rows.append(
                f"| {variant} | {r['n']} | {name} | {100 * r['em']:.1f} | {100 * r['f1']:.1f} | "
                f"{r['retrieval_rate']:.2f} | {r['reward']:.3f} | {hit} | {gain} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
