"""The `smartrag` command: `smartrag ask "question" ...` answers through the SmartRAG graph."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
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


def check_writable(path: Path) -> None:
    """Fail before the work, not after it: `path`'s folder is created and must take a new file, and `path` must be a
    file that can be written, if it exists."""
    try:
        if path.is_dir():
            raise IsADirectoryError("it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.open("a").close()
        else:
            tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as error:
        raise ValueError(f"--output {path}: cannot write there ({error}): choose another path") from error


def evaluate(args: argparse.Namespace) -> int:
    import torch

    from training import dataset_path, load_qa, sample, summary_line
    from training import evaluate as run_evaluation

    from .graph import create_smartrag_graph

    if (args.data is None) == (args.dataset is None):
        raise SystemExit("smartrag eval: give exactly one of --data PATH or --dataset NAME")
    check_writable(Path(args.output))
    path = Path(args.data) if args.data else dataset_path(args.dataset, args.split)
    examples = sample(load_qa(path), args.limit, args.seed)
    torch.manual_seed(args.seed)
    policy = SmartRAGPolicy.load(args.policy)
    graph = create_smartrag_graph(policy, build_retriever("local", args.corpus, args.k))
    config = {"data": str(path), "corpus": args.corpus or "bundled", "policy": args.policy or "embedded",
              "k": args.k, "limit": args.limit, "seed": args.seed}
    results = run_evaluation(graph, examples, mode=args.mode, threshold=args.threshold, batch_size=args.batch_size,
                             config=config, format_policy=policy if args.check_format else None)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(summary_line(results))
    return 0


def train_warmup(args: argparse.Namespace) -> int:
    from training import dataset_path, load_qa, sample
    from training.warmup import build_warmup, write_warmup

    counts = args.per_dataset * len(args.datasets) if len(args.per_dataset) == 1 else args.per_dataset
    if len(counts) != len(args.datasets):
        raise SystemExit(f"--per-dataset: one count for all or one per data set ({len(args.datasets)}), got {len(counts)}")
    examples = [e for name, n in zip(args.datasets, counts, strict=True) for e in sample(load_qa(dataset_path(name, args.split)), n, args.seed)]
    rows, report = build_warmup(SmartRAGPolicy.load(args.policy or "embedded-base"), build_retriever("local", args.corpus, args.k), examples,
                                rewrites=args.rewrites, seed=args.seed, no_search=args.no_search_examples)
    write_warmup(rows, report, args.output)
    print(json.dumps(report))
    return 0


def train_export(args: argparse.Namespace) -> int:
    from training.export import export_adapter

    print(export_adapter(args.adapter, args.output))
    return 0


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--flag` per dataclass field; defaults stay None so a YAML config can fill what flags leave out."""
    import dataclasses

    scalars = {"int": int, "float": float}  # any other type is read as text
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        base = kind.removesuffix(" | None")
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif base.startswith("list["):
            parser.add_argument(flag, nargs="+", type=scalars.get(base[len("list["):-1], str), default=None,
                                metavar=f.name.upper())
        elif base.startswith("dict[str, "):
            parser.add_argument(flag, nargs="+", action=_KeyValues, convert=scalars.get(base[len("dict[str, "):-1], str),
                                default=None, metavar="KEY=VALUE")
        else:
            convert = scalars.get(base, str)
            if kind.endswith("| None"):  # `--flag none` sets None
                convert = functools.partial(_none_or, convert)
            parser.add_argument(flag, type=convert, default=None, metavar=f.name.upper())


class _KeyValues(argparse.Action):
    """`--flag a=1 b=2` -> {"a": 1, "b": 2}, each value converted."""

    def __init__(self, *args: Any, convert: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        pairs = {}
        for text in values:
            key, equals, value = text.partition("=")
            try:
                if not key or not equals:
                    raise ValueError(text)
                pairs[key] = self.convert(value)
            except ValueError:
                parser.error(f"{option_string}: expected KEY=VALUE, got {text!r}")
        setattr(namespace, self.dest, pairs)


_NONE = object()
"""What `--flag none` parses to: argparse's own None means "not given"."""


def _none_or(convert: Callable[[str], Any], text: str) -> Any:
    return _NONE if text.lower() == "none" else convert(text)


def dataclass_flag_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` that `add_dataclass_flags` flags were given for (`--flag none`: None)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: None if v is _NONE else v for k, v in vars(args).items() if k in names and v is not None}


def train_stage(args: argparse.Namespace) -> int:
    """`smartrag train sft|ppo`: the stage's config from `--config` YAML, overridden by flags; prints the output."""
    import dataclasses

    if args.stage == "sft":
        from training.sft import SFTConfig as config_class
        from training.sft import train
    else:
        from training.ppo import PPOConfig as config_class
        from training.ppo import train

    values: dict[str, Any] = {}
    if args.config:
        import yaml

        values.update(yaml.safe_load(Path(args.config).read_text()) or {})
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(values) - names
    if unknown:
        raise SystemExit(f"smartrag train {args.stage}: unknown config fields {sorted(unknown)}")
    values.update(dataclass_flag_values(args, config_class))
    missing = [f.name for f in dataclasses.fields(config_class)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values]
    if missing:
        raise SystemExit(f"smartrag train {args.stage}: give --{missing[0].replace('_', '-')} or a config with `{missing[0]}:`")
    print(train(config_class(**values)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartrag", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("ask", help="answer questions through the SmartRAG graph")
    p.add_argument("questions", nargs="+", metavar="QUESTION", help="one or more questions (answered as a batch)")
    p.add_argument("--retriever", choices=["local", "web"], default="local", help="BM25 over a local corpus, or DuckDuckGo")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument("--policy", help="model or peft adapter directory, or embedded-base (default: the embedded SmolLM2-135M-Instruct with the shipped SmartRAG adapter)")
    p.add_argument("--threshold", type=float, default=0.5, help="retrieve when P(search) >= this")
    p.add_argument("--max-retrievals", type=non_negative_int, default=1, help="retrieval quota per question")
    p.add_argument("--k", type=positive_int, default=4, help="documents per retrieval")
    p.add_argument("--json", action="store_true", help="print each final state as one JSON line")
    p.set_defaults(run=ask)

    p = commands.add_parser("eval", help="score a QA set in one mode: EM, F1, reward, retrieval rate, hit")
    p.add_argument("--data", help="QA JSONL(.gz) with id, question, answers")
    p.add_argument("--dataset", help="the repository's own data set (popqa, ambignq, hotpotqa, nq, triviaqa, ...)")
    p.add_argument("--split", default="dev")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    p.add_argument("--mode", default="smartrag", choices=["smartrag", "no-retrieval", "always-retrieve", "always-retrieve-question"])
    p.add_argument("--policy", help="model or peft adapter directory, or embedded-base (default: the trained embedded policy)")
    p.add_argument("--threshold", type=float, default=0.5, help="smartrag mode: retrieve when P(search) >= this")
    p.add_argument("--limit", type=positive_int, help="score only the first N questions (after the seeded shuffle)")
    p.add_argument("--seed", type=int, default=0, help="shuffles the questions before --limit; seeds torch")
    p.add_argument("--k", type=positive_int, default=4, help="documents per retrieval")
    p.add_argument("--batch-size", type=positive_int, default=32, help="questions per graph.batch")
    p.add_argument("--output", required=True, help="results JSON")
    p.add_argument("--check-format", action="store_true",
                   help="also generate each first turn with no forced prefix: free_format_error_rate")
    p.set_defaults(run=evaluate)

    train_commands = commands.add_parser("train", help="build warm-up data, run SFT, run PPO").add_subparsers(dest="stage", required=True)
    p = train_commands.add_parser("warmup", help="build SFT warm-up examples from QA train splits")
    p.add_argument("--datasets", nargs="+", default=["popqa", "ambignq", "hotpotqa"])
    p.add_argument("--split", default="train")
    p.add_argument("--per-dataset", type=positive_int, nargs="+", default=[400],
                   help="questions sampled from each data set: one count for all, or one per data set")
    p.add_argument("--rewrites", type=non_negative_int, default=2, help="sampled rewrites tried when the question retrieves no answer")
    p.add_argument("--policy", help="model or adapter directory (default: the bare embedded model, embedded-base)")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved index (default: the bundled corpus)")
    p.add_argument("--k", type=positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-search-examples", action="store_true",
                   help="label the questions that nothing answers [Answer] (decision only; not the paper's protocol)")
    p.add_argument("--output", default="runs/warmup.jsonl")
    p.set_defaults(run=train_warmup)
    from training.sft import SFTConfig

    p = train_commands.add_parser("sft", help="supervised warm-up (LoRA by default); every config field is a flag")
    p.add_argument("--config", help="YAML file of SFTConfig fields; flags override it")
    add_dataclass_flags(p, SFTConfig)
    p.set_defaults(run=train_stage)
    from training.ppo import PPOConfig

    p = train_commands.add_parser("ppo", help="PPO with the retriever in the loop (from an SFT adapter: --init DIR)")
    p.add_argument("--config", help="YAML file of PPOConfig fields; flags override it")
    add_dataclass_flags(p, PPOConfig)
    p.set_defaults(run=train_stage)
    p = train_commands.add_parser("export", help="a trained adapter as bf16, its base recorded portably, for shipping")
    p.add_argument("adapter", help="the adapter directory (e.g. runs/smartrag-paired/best)")
    p.add_argument("--output", required=True, help="where to write it (a model card there is kept)")
    p.set_defaults(run=train_export)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:  # a bad value, file or path the user gave: one line, no traceback
        parser.exit(2, f"smartrag: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
