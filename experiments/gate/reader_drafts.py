"""The pairs a gate that reads the reader learns from and is scored on: per question, the probe (a search with the
question), the decision pass and the policy's two greedy drafts, closed book and over the probe's hits, as the graph
makes them (`langchain_smartrag.training.pairs.draft_pairs`, what `smartrag train gate --reader` plays).

    HF_HUB_OFFLINE=1 python experiments/gate/reader_drafts.py --policy runs/sft-reading-given/final \
        --source train --output runs/reader-drafts/train.jsonl
    HF_HUB_OFFLINE=1 python experiments/gate/reader_drafts.py --policy runs/sft-reading-given/final \
        --source dev --output runs/reader-drafts/dev.jsonl
    HF_HUB_OFFLINE=1 python experiments/gate/reader_drafts.py --policy runs/sft-reading-given/final \
        --source own-index --output runs/reader-drafts/own-index.jsonl

Sources: `train`, the questions of the gate's paired train runs (`--pairs`; none of them a warm-up question); `dev`,
the questions of a reproduction's forced runs (`--records`, each data set's sample; `extra`: set, id);
`own-index`, `benchmarks/own_index` over the bundled corpus plus its invented facts (`extra`: kind, split). A rerun
resumes where an interrupted one stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared import DATA_SETS, ROOT, result_path

from langchain_smartrag import BM25Retriever, SmartRAGPolicy
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.training.data import QAExample
from langchain_smartrag.training.pairs import draft_pairs

PAIRS = [ROOT / "runs" / "gate-reading" / "train-pairs.jsonl"]
RECORDS = ROOT / "experiments" / "reading" / "results" / "reproduce"


def questions(source: str, pairs: list[Path], records: Path) -> list[QAExample]:
    """A source's questions, their data set or kind in `extra`."""
    if source == "train":
        return [
            QAExample(row["id"], row["question"], row["golds"], row.get("extra", {}))
            for path in pairs
            for _, row in read_jsonl(path)
        ]
    if source == "dev":
        return [  # a question may be in two sets (PopQA's): its id names the set
            QAExample(f"{variant}: {r['id']}", r["question"], r["golds"], {"set": variant, "id": r["id"]})
            for variant in DATA_SETS
            for r in json.loads(result_path(records, variant, "smartrag", "no-retrieval").read_text())["records"]
        ]
    from own_index import QUESTIONS

    return [
        QAExample(row["id"], row["question"], row["answers"], {"kind": row["kind"], "split": row["split"]})
        for _, row in read_jsonl(QUESTIONS)
    ]


def retriever_for(source: str) -> BM25Retriever:
    """BM25 over the bundled corpus, or over it and the own index's facts (k=4, as served)."""
    if source == "own-index":
        from own_index import build_index

        return build_index(4)
    return BM25Retriever.bundled(k=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="embedded", help="as SmartRAGPolicy.load reads it")
    parser.add_argument("--source", choices=("train", "dev", "own-index"), required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, nargs="*", default=PAIRS, help="paired train runs (train source)")
    parser.add_argument("--records", type=Path, default=RECORDS, help="a reproduction's results folder (dev source)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="at most this many questions (a smoke run)")
    args = parser.parse_args()
    examples = questions(args.source, args.pairs, args.records)[: args.limit]
    policy, retriever = SmartRAGPolicy.load(args.policy), retriever_for(args.source)
    pairs = draft_pairs(policy, retriever, examples, args.output, batch_size=args.batch_size)
    print(f"{len(pairs)} pairs in {args.output}")


if __name__ == "__main__":
    main()
