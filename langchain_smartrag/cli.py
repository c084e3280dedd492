"""The `smartrag` command: `smartrag ask "question" ...` answers through the SmartRAG graph;
`smartrag eval` and `smartrag train ...` run the training package's commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .policy import SmartRAGPolicy
from .retrievers import build_retriever


def to_json(state: dict[str, Any]) -> dict[str, Any]:
    """A final state with its Documents as plain dicts."""
    out = dict(state)
    out["documents"] = [{"page_content": d.page_content, "metadata": d.metadata} for d in state.get("documents", [])]
    return out


def ask(args: argparse.Namespace) -> int:
    from .graph import create_smartrag_graph

    graph = create_smartrag_graph(
        SmartRAGPolicy.load(args.policy),
        build_retriever(args.retriever, args.corpus, args.k),
        max_retrievals=args.max_retrievals,
        threshold=args.threshold,
        preview=args.preview,
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
            print(f"   P(search): {probabilities}; retrievals: {state['retrievals']}; previews: {state['previews']}; "
                  f"queries: {state['queries']}")
            for error in state["errors"]:
                print(f"   error: {error}")
    return 1 if failed else 0


def positive_int(text: str) -> int:
    """An argparse type for counts (questions, documents, a batch): 0 or less would mean all, or drop some, or fail."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type for quotas and retries, where 0 means none."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {value}")
    return value


TRAINING_COMMANDS = {
    "eval": "score a QA set in one mode: EM, F1, reward, retrieval rate, hit",
    "train": "build warm-up data, run SFT, run PPO, export an adapter",
}
"""Commands that live in `langchain_smartrag.training.cli`, imported only when one runs."""


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run a parsed command; a bad value, file or path the user gave is one line and exit 2, not a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"smartrag: error: {error}\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:
        from .training.cli import main as training_main

        return training_main(argv)
    parser = argparse.ArgumentParser(prog="smartrag", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("ask", help="answer questions through the SmartRAG graph")
    p.add_argument("questions", nargs="+", metavar="QUESTION", help="one or more questions (answered as a batch)")
    p.add_argument("--retriever", choices=["local", "web"], default="local", help="BM25 over a local corpus, or DuckDuckGo")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument("--policy", help="model or peft adapter directory, or embedded-base (default: the embedded SmolLM2-135M-Instruct with the shipped SmartRAG adapter)")
    p.add_argument("--threshold", type=float, default=0.5, help="retrieve when P(search) >= this")
    p.add_argument("--max-retrievals", type=non_negative_int, default=1, help="retrieval quota per question")
    p.add_argument("--preview", type=non_negative_int,
                   help="titles of the question's top hits the first decision sees (default: the policy's own; off "
                        "for --retriever web, where it is a real search)")
    p.add_argument("--k", type=positive_int, default=4, help="documents per retrieval")
    p.add_argument("--json", action="store_true", help="print each final state as one JSON line")
    p.set_defaults(run=ask)
    for name, description in TRAINING_COMMANDS.items():
        commands.add_parser(name, help=description, add_help=False)  # parsed by training.cli (see above)
    return run_command(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
