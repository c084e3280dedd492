"""A new user's own index: the bundled corpus plus 60 invented facts no model can know, as a user would add theirs.

    HF_HUB_OFFLINE=1 python benchmarks/own_index.py [--split dev|test|all] [--limit N] [--output FILE.json]

Builds one BM25 index (k=4 by default) over the bundled corpus (`BM25Retriever.bundled()`'s files) and
`benchmarks/own_index/facts.jsonl`, cached on disk after the first build, and runs
`benchmarks/own_index/questions.jsonl` through `create_smartrag_graph(policy, retriever)` in four modes:
no-retrieval, always-retrieve-question, always-retrieve and smartrag (the policy decides). The questions are of
two kinds: "domain" (one per fact, answerable only from it: the policy should search) and "general" (what any
model knows closed-book: searching costs alpha for nothing). Each has a `split`, dev or test, alternating:
tune on dev only, keep test held out.

Reported per mode and kind: search rate, EM, F1, reward (`training.evaluate`'s scorer), and for domain questions
how often the question's fact was the top hit (`top1`) or among the hits (`in_k`), over the questions that
searched. Prints a markdown table; `--output` writes it all (every record included) as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "own_index"
FACTS = HERE / "facts.jsonl"
QUESTIONS = HERE / "questions.jsonl"
MODES = ("no-retrieval", "always-retrieve-question", "always-retrieve", "smartrag")
KINDS = ("domain", "general", "all")
DECISIONS = ("gate", "token")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--policy",
        default=None,
        help="the policy, as SmartRAGPolicy.load reads it: a directory or hub id, 'embedded' "
        "(default: the shipped trained embedded policy) or 'embedded-base'",
    )
    parser.add_argument(
        "--split",
        choices=("dev", "test", "all"),
        default="all",
        help="which questions: dev (tune on these), test (held out) or all (default)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="at most the first N questions of each kind (domain, general) of the split",
    )
    parser.add_argument("--output", type=Path, default=None, metavar="JSON", help="write the results here")
    parser.add_argument(
        "--decision",
        choices=DECISIONS,
        default=None,
        help="create_smartrag_graph(decision=...): who takes the first decision (default: the graph's own)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="which modes (default: all)")
    parser.add_argument(
        "--threshold", type=float, help="smartrag's threshold (default: the gate's own, or 0.5 for the token)"
    )
    parser.add_argument("--gate", help="a folder holding gate.json: the policy's gate for this run")
    parser.add_argument("--k", type=int, default=4, help="documents per search (default 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="questions per graph.batch call (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    return args


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def select(rows: list[dict[str, Any]], split: str, limit: int | None) -> list[dict[str, Any]]:
    """The split's questions, at most `limit` of each kind, in file order."""
    chosen = []
    for kind in ("domain", "general"):
        of_kind = [r for r in rows if r["kind"] == kind and (split == "all" or r["split"] == split)]
        chosen.extend(of_kind[:limit])
    return chosen


def build_index(k: int) -> Any:
    """One BM25 over the bundled corpus files and the facts, built once and cached under the package's cache."""
    from langchain_smartrag import BM25Retriever
    from langchain_smartrag.cache import build_once, cache_dir
    from langchain_smartrag.retrievers.bm25 import BUNDLED_CORPUS_DIR

    paths = [*sorted(BUNDLED_CORPUS_DIR.glob("*.jsonl.gz")), FACTS]
    fingerprint = hashlib.sha256()
    for path in paths[:-1]:
        fingerprint.update(f"{path.name}:{path.stat().st_size}".encode())
    fingerprint.update(FACTS.read_bytes())
    target = cache_dir() / f"bm25-own-index-{fingerprint.hexdigest()[:12]}"
    if not target.exists():
        print(f"building the index over {', '.join(p.name for p in paths)} (once; cached in {target})", file=sys.stderr)
    build_once(target, lambda out: BM25Retriever.from_jsonl(*paths).save(out))
    return BM25Retriever.load(target, k=k)


class RecordingGraph:
    """The graph, keeping every state `batch` returns (in order), so the records can be matched to the documents
    retrieved: `evaluate` calls only `batch`."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.states: list[Any] = []

    def batch(self, inputs: Any, config: Any = None, **kwargs: Any) -> list[Any]:
        states = self.graph.batch(inputs, config, **kwargs)
        self.states.extend(states)
        return states


def annotate(records: list[dict[str, Any]], states: list[Any], rows: list[dict[str, Any]]) -> None:
    """Add each record's kind, split, the documents it retrieved and, for a domain question that searched,
    whether its fact was the top hit / among the hits."""
    for record, state, row in zip(records, states, rows, strict=True):
        documents = [] if isinstance(state, BaseException) else state.get("documents", [])
        retrieved = [
            {"id": d.metadata.get("id"), "title": d.metadata.get("title"), "score": d.metadata.get("score")}
            for d in documents
        ]
        record.update(kind=row["kind"], split=row["split"], retrieved=retrieved, top1=None, in_k=None)
        if row["kind"] == "domain" and record["retrievals"]:
            is_fact = [d["id"] == row["fact"] or d["title"] == row["title"] for d in retrieved]
            record.update(top1=bool(is_fact[:1] and is_fact[0]), in_k=any(is_fact))


def kind_metrics(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Search rate, EM, F1, reward; top1 / in_k over the domain questions that searched (None if none did)."""
    from langchain_smartrag.training import means

    if not records:
        return None
    searched = [r for r in records if r["top1"] is not None]
    return {
        "n": len(records),
        **means(records),
        "format_error_rate": sum(not r["well_formed"] for r in records) / len(records),
        "top1": sum(r["top1"] for r in searched) / len(searched) if searched else None,
        "in_k": sum(r["in_k"] for r in searched) / len(searched) if searched else None,
        "n_searched_domain": len(searched),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    def cell(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| mode | kind | n | search | EM | F1 | reward | fact top-1 | fact in top-k |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, by_kind in results.items():
        for kind in KINDS:
            m = by_kind.get(kind)
            if m is None:
                continue
            lines.append(
                f"| {mode} | {kind} | {m['n']} | {cell(m['retrieval_rate'], 2)} | {cell(m['em'])} | "
                f"{cell(m['f1'])} | {cell(m['reward'])} | {cell(m['top1'], 2)} | {cell(m['in_k'], 2)} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rows = select(read_rows(QUESTIONS), args.split, args.limit)
    if not rows:
        raise SystemExit("no questions selected")

    from langchain_smartrag import DecisionGate, SmartRAGPolicy, create_smartrag_graph
    from langchain_smartrag.training import QAExample, evaluate

    retriever = build_index(args.k)
    policy = SmartRAGPolicy.load(args.policy)
    if args.gate is not None:
        policy.gate = DecisionGate.load(args.gate)
        if policy.gate is None:
            raise SystemExit(f"--gate {args.gate}: no gate.json there")
    graph = create_smartrag_graph(policy, retriever, decision=args.decision)
    decision = args.decision or ("gate" if policy.gate is not None else "token")  # the graph's default for BM25
    examples = [
        QAExample(
            r["id"], r["question"], r["answers"], {k: v for k, v in r.items() if k not in ("id", "question", "answers")}
        )
        for r in rows
    ]
    policy_name = args.policy or "embedded"
    config = {
        "data": str(QUESTIONS.relative_to(Path(__file__).resolve().parent.parent)),
        "split": args.split,
        "limit": args.limit,
        "k": args.k,
        "policy": policy_name,
        "decision": decision,
        "gate": args.gate,
    }

    runs: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    for mode in args.modes:
        recording = RecordingGraph(graph)
        run = evaluate(
            recording,
            examples,
            mode=mode,
            threshold=args.threshold,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            config=config,
        )
        annotate(run["records"], recording.states, rows)
        runs[mode] = run
        results[mode] = {
            kind: kind_metrics([r for r in run["records"] if kind == "all" or r["kind"] == kind]) for kind in KINDS
        }

    print(table(results))
    if args.output is not None:
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "policy": policy_name,
            "n": len(rows),
            "n_by_kind": {kind: sum(r["kind"] == kind for r in rows) for kind in ("domain", "general")},
            "split": args.split,
            "limit": args.limit,
            "threshold": args.threshold,
            "k": args.k,
            "decision": decision,
            "gate": args.gate,
            "index": {"documents": len(retriever), "facts": sum(1 for _ in read_rows(FACTS))},
            "platform": platform.platform(),
            "table": table(results),
            "results": results,
            "runs": runs,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
