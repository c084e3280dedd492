"""How well the answer turn reads: EM/F1 of the policy's answer given (a) the gold paragraph first, (b) the top-k hits,
(c) no documents.

    HF_HUB_OFFLINE=1 python benchmarks/reading.py [--n 100] [--k 4] [--policies embedded-base embedded] \
        [--output benchmarks/results/reading/reading.json]

Three sets, each question's gold paragraph in the index: HotpotQA dev questions whose supporting paragraphs the
bundled corpus holds (gold: those paragraphs, by title), PopQA dev questions whose subject's page it holds (gold: that
page), and the own-index domain questions (`benchmarks/own_index`: invented facts added to the bundled corpus; gold:
the fact). In (a) the gold paragraphs come first and the question's other top hits fill the k places; in (b) the k
places hold the top hits of a search with the question; in (c) there are none (closed book). Greedy answers through
the one prompt format (`SmartRAGPolicy.prompt`), no decision: what the answer turn does once the documents are in.
Also reported: how often the observation the policy saw holds a gold answer (`answer_shown`), which bounds what
reading can reach.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.documents import Document

CONDITIONS = ("gold first", "retrieved", "closed book")
"""What the answer turn is given: the gold paragraphs first, the top hits of a search with the question (plain RAG),
or no documents (closed book: what reading must not cost)."""
CUTS = (400, 800, 0)
"""Document cuts the `answer_shown` table tries, in characters (400: what the observation keeps; 0: whole)."""


def hotpotqa_and_popqa(n: int) -> dict[str, list[tuple[Any, list[str]]]]:
    """(example, gold titles) for the covered HotpotQA and PopQA dev questions, a seeded sample of `n` each."""
    from langchain_smartrag.training.data import dataset_path, load_qa, sample
    from langchain_smartrag.training.questions import covered

    sets = {}
    for name, gold in (
        ("hotpotqa", lambda e: list(e.extra["supporting_titles"])),
        ("popqa", lambda e: [e.extra["s_wiki_title"]]),
    ):
        examples = [e for e in load_qa(dataset_path(name, "dev")) if covered(e)]
        sets[name] = [(e, gold(e)) for e in sample(examples, n, seed=0)]
    return sets


def observations(
    retriever: Any, by_title: dict[str, Document], question: str, gold: Sequence[str], k: int
) -> dict[str, list[Document]]:
    """Each condition's documents for a question: gold first then other hits, or the hits alone."""
    hits = retriever.invoke(question)[:k]
    golds = [by_title[t] for t in gold if t in by_title]
    rest = [d for d in hits if d.metadata.get("title") not in gold]
    return {"gold first": (golds + rest)[:k], "retrieved": hits, "closed book": []}


def read(policy: Any, items: list[dict[str, Any]], batch: int = 16) -> list[str]:
    """The policy's greedy answers, each to its question and documents."""
    from langchain_smartrag import ANSWER, parse_action

    answers = []
    for first in range(0, len(items), batch):
        chunk = items[first : first + batch]
        generations = policy.generate_batch([policy.prompt(i["question"], i["documents"]) for i in chunk], ANSWER)
        answers.extend(parse_action(ANSWER + g.text).text for g in generations)
    return answers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="HotpotQA and PopQA dev questions each (default 100)")
    parser.add_argument("--k", type=int, default=4, help="documents in the observation (default 4, as served)")
    parser.add_argument(
        "--policies",
        nargs="*",
        default=["embedded-base", "embedded"],
        help="SmartRAGPolicy.load sources (none: only the answer-shown table, no model)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    from own_index import FACTS, QUESTIONS, build_index, read_rows

    from langchain_smartrag import BM25Retriever, SmartRAGPolicy
    from langchain_smartrag.protocol import render_observation
    from langchain_smartrag.retrievers.bm25 import BUNDLED_CORPUS_DIR, corpus_documents
    from langchain_smartrag.scoring import exact_match, f1_score, has_answer
    from langchain_smartrag.training.data import QAExample

    corpus = [d for path in sorted(BUNDLED_CORPUS_DIR.glob("*.jsonl.gz")) for d in corpus_documents(path)]
    facts = corpus_documents(FACTS)
    by_title = {str(d.metadata.get("title")): d for d in [*corpus, *facts]}
    own = [
        (QAExample(r["id"], r["question"], r["answers"], {}), [r["title"]])
        for r in read_rows(QUESTIONS)
        if r["kind"] == "domain"
    ]
    sets = {**hotpotqa_and_popqa(args.n), "own index": own}
    indexes = {"hotpotqa": BM25Retriever.bundled(k=args.k), "popqa": None, "own index": build_index(args.k)}
    indexes["popqa"] = indexes["hotpotqa"]

    items = []
    for name, pairs in sets.items():
        for example, gold in pairs:
            for condition, documents in observations(indexes[name], by_title, example.question, gold, args.k).items():
                items.append(
                    {
                        "set": name,
                        "condition": condition,
                        "id": example.id,
                        "question": example.question,
                        "golds": example.answers,
                        "documents": documents,
                        "answer_shown": has_answer(render_observation(documents), example.answers),
                        "shown_at": {
                            cut: has_answer(render_observation(documents, chars=cut), example.answers) for cut in CUTS
                        },
                    }
                )

    shown = {
        f"{name} / {condition}": {
            str(cut or "whole"): sum(i["shown_at"][cut] for i in of) / len(of)
            for cut in CUTS
            if (of := [i for i in items if i["set"] == name and i["condition"] == condition])
        }
        for name in sets
        for condition in CONDITIONS[:2]
    }
    print("| set / condition | " + " | ".join(f"answer shown, cut {c or 'none'}" for c in CUTS) + " |")
    print("|---|" + "---:|" * len(CUTS))
    for key, row in shown.items():
        print(f"| {key} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
    results: dict[str, Any] = {"answer shown by cut": shown}
    for source in args.policies:
        policy = SmartRAGPolicy.load(source)
        answers = read(policy, items)
        rows = results[source] = {}
        for name in sets:
            for condition in CONDITIONS:
                scored = [
                    (exact_match(a, i["golds"]), f1_score(a, i["golds"]), i["answer_shown"])
                    for a, i in zip(answers, items, strict=True)
                    if i["set"] == name and i["condition"] == condition
                ]
                rows[f"{name} / {condition}"] = {
                    "n": len(scored),
                    "em": sum(s[0] for s in scored) / len(scored),
                    "f1": sum(s[1] for s in scored) / len(scored),
                    "answer_shown": sum(s[2] for s in scored) / len(scored),
                }
        results[source + " answers"] = [
            {"set": i["set"], "condition": i["condition"], "id": i["id"], "answer": a}
            for a, i in zip(answers, items, strict=True)
        ]

    lines = []
    if args.policies:
        lines.append(
            "| set / condition | n | answer shown | " + " | ".join(f"{p} EM / F1" for p in args.policies) + " |"
        )
        lines.append("|---|---:|---:|" + "---:|" * len(args.policies))
        for key, row in results[args.policies[0]].items():
            cells = " | ".join(f"{results[p][key]['em']:.3f} / {results[p][key]['f1']:.3f}" for p in args.policies)
            lines.append(f"| {key} | {row['n']} | {row['answer_shown']:.2f} | {cells} |")
        print("\n".join(lines))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "date": datetime.date.today().isoformat(),
                    "machine": platform.machine(),
                    "k": args.k,
                    "n": args.n,
                    "results": results,
                    "table": "\n".join(lines),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
