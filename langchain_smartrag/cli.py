"""The `smartrag` command: `smartrag ask "question" ...` answers through the SmartRAG graph, `smartrag serve` runs
LangGraph's server and Studio on it. The other commands (`calibrate`, `eval`, `train`) are entry points of the
`langchain_smartrag.commands` group, imported only when one runs."""

from __future__ import annotations

import argparse
import ast
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from ._cli import non_negative_int, positive_int, run_command

COMMANDS = "langchain_smartrag.commands"
"""The entry-point group of the commands beside `ask`: each entry point is named after its command and names a
function that adds that command to an argparse subparsers object (`commands.add_parser(name, ...)`). The first line
of the function's docstring is the command's line in `smartrag --help`."""


def to_json(state: dict[str, Any]) -> dict[str, Any]:
    """A final state with its Documents as plain dicts."""
    out = dict(state)
    out["documents"] = [{"page_content": d.page_content, "metadata": d.metadata} for d in state.get("documents", [])]
    return out


def ask(args: argparse.Namespace) -> int:
    """Answer `args.questions` as one batch; 1 when any of them failed. Imports the model stack here, not at the
    top of the module, so `smartrag --help` never loads torch."""
    from .graph import create_smartrag_graph
    from .policy import SmartRAGPolicy
    from .retrievers import build_retriever

    graph = create_smartrag_graph(
        SmartRAGPolicy.load(args.policy),
        build_retriever(args.retriever, args.corpus, args.k),
        max_retrievals=args.max_retrievals,
        threshold=args.threshold,
        decision=args.decision,
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
            print(
                f"   P(search): {probabilities}; retrievals: {state['retrievals']}; previews: {state['previews']}; "
                f"queries: {state['queries']}"
            )
            for error in state["errors"]:
                print(f"   error: {error}")
    return 1 if failed else 0


LANGGRAPH_CONFIG = Path(__file__).with_name("langgraph.json")
"""The `langgraph.json` the package ships (serving `langchain_smartrag.server:graph`): `smartrag serve` runs
`langgraph dev` on it from any folder; `langgraph dev --config` takes it too."""

SERVER_SETTINGS = {
    "policy": "SMARTRAG_POLICY",
    "retriever": "SMARTRAG_RETRIEVER",
    "corpus": "SMARTRAG_CORPUS",
    "k": "SMARTRAG_K",
}
"""`smartrag serve`'s flags and the environment variables `langchain_smartrag.server` reads them from."""


def serve_command(args: argparse.Namespace) -> list[str]:
    """The `langgraph dev` command line `smartrag serve` runs: the shipped config, then the caller's options."""
    options = ["--host", args.host, "--port", str(args.port), *(["--no-browser"] if args.no_browser else [])]
    return [sys.executable, "-m", "langgraph_cli", "dev", "--config", str(LANGGRAPH_CONFIG), *options, *args.langgraph]


def serve(args: argparse.Namespace) -> int:
    """Run LangGraph's development server and Studio on the shipped `langgraph.json`, the flags passed on to
    `langchain_smartrag.server` through its environment variables (on POSIX this process becomes the server)."""
    if importlib.util.find_spec("langgraph_api") is None:
        raise ValueError(
            'serve needs the LangGraph server: pip install "langchain-smartrag[server]" (langgraph-cli[inmem])'
        )
    settings = {name: str(getattr(args, flag)) for flag, name in SERVER_SETTINGS.items() if getattr(args, flag)}
    command, env = serve_command(args), {**os.environ, **settings}
    if os.name == "posix":  # become the server: its signals (Ctrl-C, a supervisor's SIGTERM) reach it directly
        os.execve(command[0], command, env)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:  # Ctrl-C reached the server too, which stops on its own
        return 130


def add_serve_command(commands: Any) -> None:
    """Add `serve` to an argparse subparsers object."""
    p = commands.add_parser(
        "serve",
        help="run LangGraph's server and Studio on the SmartRAG graph (needs the [server] extra)",
        description="Runs `langgraph dev` on the langgraph.json the package ships; options after -- go to it "
        "(e.g. smartrag serve --policy DIR -- --no-reload).",
    )
    p.add_argument("--policy", help="model or peft adapter directory, embedded or embedded-base (default: embedded)")
    p.add_argument("--retriever", help="local, web or module:factory (default: local)")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument("--k", type=positive_int, help="documents per retrieval (default: 4)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=positive_int, default=2024, help="port to serve on")
    p.add_argument("--no-browser", action="store_true", help="do not open Studio in a browser")
    p.add_argument(
        "langgraph", nargs="*", metavar="LANGGRAPH_DEV_OPTION", help="after --: more `langgraph dev` options"
    )
    p.set_defaults(run=serve)


def plugin_commands() -> dict[str, EntryPoint]:
    """The installed commands of the `COMMANDS` group, by name (none is imported)."""
    return {entry_point.name: entry_point for entry_point in entry_points(group=COMMANDS)}


def source_file(module: str) -> Path | None:
    """A module's source file, each package above it found on its parent's path but not imported (None: none)."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    for depth in range(1, len(parts) + 1):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join([top, *parts[:depth]]), spec.submodule_search_locations
        )
    return Path(spec.origin) if spec is not None and spec.origin else None


def summary(entry_point: EntryPoint) -> str | None:
    """The first docstring line of the function `entry_point` names, read from its source with `ast`: `smartrag
    --help` lists a command without importing its package. None where that source or docstring is not found."""
    module, _, name = (part.strip() for part in entry_point.value.partition(":"))
    try:
        path = source_file(module)
        tree = ast.parse(path.read_text()) if path else None
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body if tree else []:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            doc = ast.get_docstring(node)
            return doc.splitlines()[0] if doc else None
    return None


def add_ask_command(commands: Any) -> None:
    """Add `ask` to an argparse subparsers object."""
    p = commands.add_parser("ask", help="answer questions through the SmartRAG graph")
    p.add_argument("questions", nargs="+", metavar="QUESTION", help="one or more questions (answered as a batch)")
    p.add_argument(
        "--retriever", choices=["local", "web"], default="local", help="BM25 over a local corpus, or DuckDuckGo"
    )
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument(
        "--policy",
        help="model or peft adapter directory, or embedded-base (default: the embedded "
        "SmolLM2-135M-Instruct with the shipped SmartRAG adapter)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="retrieve when P(search) >= this (default: the gate's own, or 0.5 for the token)",
    )
    p.add_argument(
        "--decision",
        choices=["gate", "token"],
        help="who takes the first decision (default: the policy's decision gate where it has one, else the token)",
    )
    p.add_argument("--max-retrievals", type=non_negative_int, default=1, help="retrieval quota per question")
    p.add_argument(
        "--preview",
        type=non_negative_int,
        help="titles of the question's top hits the first decision sees (default: the policy's own; off "
        "for --retriever web, where it is a real search)",
    )
    p.add_argument("--k", type=positive_int, default=4, help="documents per retrieval")
    p.add_argument("--json", action="store_true", help="print each final state as one JSON line")
    p.set_defaults(run=ask)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="smartrag", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_ask_command(commands)
    add_serve_command(commands)
    for name, entry_point in plugin_commands().items():
        if name in ("ask", "serve"):
            continue
        if argv[:1] == [name]:  # the command that runs: the only one imported
            entry_point.load()(commands)
        else:
            commands.add_parser(name, help=summary(entry_point) or f"from {entry_point.value}", add_help=False)
    return run_command(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
