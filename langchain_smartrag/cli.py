"""The `smartrag` command: `smartrag ask "question" ...` answers through the SmartRAG graph."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.retrievers import BaseRetriever


def build_retriever(kind: str, corpus: str | None, k: int) -> BaseRetriever:
    """`web` is DuckDuckGo; `local` is BM25 over `corpus` (a JSONL(.gz) file or a saved index) or the bundled one."""
    from .retrievers import BM25Retriever, DuckDuckGoRetriever

    if kind == "web":
        return DuckDuckGoRetriever(k=k)
    if corpus is None:
        return BM25Retriever.bundled(k=k)
    path = Path(corpus)
    return BM25Retriever.load(path, k=k) if path.is_dir() else BM25Retriever.from_jsonl(path, k=k)


def load_policy(path: str | None) -> Any:
    """The embedded default, or a model / adapter directory."""
    from .policy import SmartRAGPolicy

    return SmartRAGPolicy.embedded() if path is None else SmartRAGPolicy.from_pretrained(path)


def to_json(state: dict[str, Any]) -> dict[str, Any]:
    """A final state with its Documents as plain dicts."""
    out = dict(state)
    out["documents"] = [{"page_content": d.page_content, "metadata": d.metadata} for d in state.get("documents", [])]
    return out


def ask(args: argparse.Namespace) -> int:
    from .graph import create_smartrag_graph

    graph = create_smartrag_graph(
        load_policy(args.policy),
        build_retriever(args.retriever, args.corpus, args.k),
        max_retrievals=args.max_retrievals,
        threshold=args.threshold,
    )
    states = graph.batch([{"question": q} for q in args.questions], return_exceptions=True)
    failed = 0
    for question, state in zip(args.questions, states, strict=True):
        if isinstance(state, Exception):
            failed += 1
            print(f"error: {question!r}: {state}", file=sys.stderr)
        elif args.json:
            print(json.dumps(to_json(state), ensure_ascii=False))
        else:
            probabilities = ", ".join(f"{p:.2f}" for p in state["search_probabilities"]) or "-"
            print(f"Q: {question}\nA: {state['answer']}")
            print(f"   P(search): {probabilities}; retrievals: {state['retrievals']}; queries: {state['queries']}")
            for error in state["errors"]:
                print(f"   error: {error}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartrag", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("ask", help="answer questions through the SmartRAG graph")
    p.add_argument("questions", nargs="+", metavar="QUESTION", help="one or more questions (answered as a batch)")
    p.add_argument("--retriever", choices=["local", "web"], default="local", help="BM25 over a local corpus, or DuckDuckGo")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument("--policy", help="model or peft adapter directory (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--threshold", type=float, default=0.5, help="retrieve when P(search) >= this")
    p.add_argument("--max-retrievals", type=int, default=1, help="retrieval quota per question")
    p.add_argument("--k", type=int, default=4, help="documents per retrieval")
    p.add_argument("--json", action="store_true", help="print each final state as one JSON line")
    p.set_defaults(run=ask)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
