"""Play train (or dev) questions both ways through the serving graph with a policy (the shipped one by default), for
the decision gate.

    python experiments/gate/play_pairs.py --split train --out runs/gate/train-pairs.jsonl
    python experiments/gate/play_pairs.py --split train --policy runs/sft-reading-given/final \
        --exclude runs/reading/warmup_given.jsonl --out runs/gate-reading/train-pairs.jsonl
    python experiments/gate/play_pairs.py --split train --datasets popqa-covered --per-dataset 250 \
        --policy runs/sft-reading-given/final --exclude runs/reading/warmup_given.jsonl \
        runs/gate-reading/train-pairs.jsonl --out runs/gate-reading/calibration-pairs.jsonl
    python experiments/gate/play_pairs.py --split dev --datasets nq 2wikimultihopqa musique --per-dataset 150 \
        --out runs/gate/dev-pairs.jsonl

Train questions leave out the warm-up's (the first 150 of each set's seed-0 shuffle, what `smartrag train warmup
--per-dataset 150` drew) and those of any `--exclude` file (a warm-up a policy was trained further on, or pairs
played already); HotpotQA keeps the questions whose paragraphs the bundled corpus holds, as its dev set does.
`--datasets` on the train split plays those sets alone (a user's labelled questions for `calibration_curve.py`).
Resumes where it stopped.
"""

from __future__ import annotations

import argparse

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.training.data import dataset_path, load_qa, sample
from langchain_smartrag.training.pairs import drawn_apart, play_pairs
from langchain_smartrag.training.questions import covered
from langchain_smartrag.training.warmup import warmup_ids

TRAIN_MIX = {
    "popqa": 450,
    "popqa-covered": 250,
    "ambignq": 150,
    "hotpotqa": 200,
    "nq": 150,
    "2wikimultihopqa": 100,
    "musique": 100,
}
"""Train questions per set: PopQA twice (all, and the covered ones the dev table reports apart)."""


def train_questions(mix: dict[str, int], seed: int, exclude: frozenset[str] = frozenset()) -> list:
    """The mix, none of the warm-up's questions nor `exclude`, HotpotQA's and PopQA-covered's from the covered ones."""
    sets, warmup = {}, set(exclude)
    for name in mix:
        base = name.removesuffix("-covered")
        examples = load_qa(dataset_path(base, "train"))
        warmup.update(e.id for e in sample(examples, 150, seed=0))
        sets[name] = (
            [e for e in examples if covered(e)] if name.endswith("-covered") or base == "hotpotqa" else examples
        )
    return drawn_apart(sets, mix, seed, frozenset(warmup))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["train", "dev"], default="train")
    parser.add_argument(
        "--datasets", nargs="+", help="dev: the sets to play; train: these sets (e.g. popqa-covered) instead of the mix"
    )
    parser.add_argument("--per-dataset", type=int, default=300, help="questions per --datasets set")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policy", help="as SmartRAGPolicy.load reads it (default: the shipped embedded policy)")
    parser.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="JSONL",
        help="train: warm-up or pairs files whose questions are left out",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.split == "train":
        mix = dict.fromkeys(args.datasets, args.per_dataset) if args.datasets else TRAIN_MIX
        examples = train_questions(mix, args.seed, frozenset().union(*map(warmup_ids, args.exclude)))
    else:
        examples = [
            e for name in args.datasets for e in sample(load_qa(dataset_path(name, "dev")), args.per_dataset, 0)
        ]
    graph = create_smartrag_graph(SmartRAGPolicy.load(args.policy), BM25Retriever.bundled(k=4))
    pairs = play_pairs(graph, examples, args.out)
    print(f"{len(pairs)} pairs in {args.out}")


if __name__ == "__main__":
    main()
