"""The training commands of `smartrag`: `eval`, and `train warmup|sft|ppo|gate|export`.

`add_eval_command` and `add_train_command` are entry points of the `langchain_smartrag.commands` group
(pyproject.toml), which `smartrag` imports only when one of them runs (`smartrag ask` and `--help` never load the
trainers). The model stack (torch, transformers, the graph) is imported inside each command's function, so that
`smartrag eval --help` and `smartrag train sft --help` stay quick. Also runs as
`python -m langchain_smartrag.training.cli` (what `accelerate launch -m` starts).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_smartrag._cli import non_negative_int, positive_int, run_command
from langchain_smartrag._files import atomic_write_text, check_output_file

from .config import field_docs
from .data import dataset_path, load_qa, sample


def check_writable(path: Path, flag: str = "--output") -> Path:
    """Fail before the work, not after it (`_files.check_output_file`): `path` must not be a folder nor a link that
    leads nowhere, its folder is created and must take a new file, an existing file must be writable. Returns the
    file that writing `path` writes (a link's target)."""
    return check_output_file(path, flag)


def evaluate(args: argparse.Namespace) -> int:
    import torch

    from langchain_smartrag.graph import create_smartrag_graph
    from langchain_smartrag.policy import SmartRAGPolicy
    from langchain_smartrag.retrievers import build_retriever

    from .evaluate import evaluate as run_evaluation
    from .evaluate import summary_line
    from .strategies import markdown_table

    if (args.data is None) == (args.dataset is None):
        raise ValueError("smartrag eval: give exactly one of --data PATH or --dataset NAME")
    output = Path(args.output)
    check_writable(output)
    path = Path(args.data) if args.data else dataset_path(args.dataset, args.split)
    examples = sample(load_qa(path), args.limit, args.seed)
    retriever = build_retriever(args.retriever, args.corpus, args.k)  # a factory's mistake before the model loads
    torch.manual_seed(args.seed)
    policy = SmartRAGPolicy.load(args.policy)
    graph = create_smartrag_graph(policy, retriever)
    config = {
        "data": str(path),
        "corpus": args.corpus or "bundled",
        "policy": args.policy or "embedded",
        "k": args.k,
        "limit": args.limit,
        "seed": args.seed,
    }
    if args.compare:
        results = compare_strategies(graph, policy, retriever, examples, args.batch_size, config)
        check_writable(output)
        atomic_write_text(output, json.dumps(results, indent=1, ensure_ascii=False))
        print(markdown_table(results["table"]))
        return 0
    results = run_evaluation(
        graph,
        examples,
        mode=args.mode,
        threshold=args.threshold,
        batch_size=args.batch_size,
        config=config,
        format_policy=policy if args.check_format else None,
        preview=args.preview,
        decision=args.decision,
    )
    check_writable(output)  # again: the folder may have gone while it ran
    atomic_write_text(output, json.dumps(results, indent=1, ensure_ascii=False))  # the old file stays whole till then
    print(summary_line(results))
    return 0


def compare_strategies(
    graph: Any, policy: Any, retriever: Any, examples: Sequence[Any], batch_size: int, config: dict[str, Any]
) -> dict[str, Any]:
    """Both forced episodes of every question, and every first-decision strategy's reward read off them
    (`training.strategies`): the score rule and the gate are the policy's gate's, when it has one."""
    from langchain_smartrag.scoring import ALPHA_PREVIEW

    from .evaluate import evaluate as run_evaluation
    from .gate import decision_features
    from .strategies import strategy_rewards, strategy_table

    runs = {
        mode: run_evaluation(graph, examples, mode=mode, batch_size=batch_size, config=config)
        for mode in ("always-retrieve", "no-retrieval")
    }
    rows = decision_features(policy, retriever, [e.question for e in examples], batch_size)
    gate = policy.gate
    rewards = strategy_rewards(
        [r["reward"] for r in runs["always-retrieve"]["records"]],
        [r["reward"] for r in runs["no-retrieval"]["records"]],
        rows,
        probe_cost=ALPHA_PREVIEW,
        gate=gate,
        score_threshold=gate.trained_under.get("score_rule_threshold") if gate else None,
    )
    return {"config": config, "table": strategy_table(rewards), "runs": runs}


def train_warmup(args: argparse.Namespace) -> int:
    from langchain_smartrag.policy import SmartRAGPolicy
    from langchain_smartrag.retrievers import build_retriever

    from .warmup import build_warmup, write_warmup

    check_writable(Path(args.output))
    sources = [Path(f) for f in args.data] if args.data else [dataset_path(name, args.split) for name in args.datasets]
    counts = args.per_dataset * len(sources) if len(args.per_dataset) == 1 else args.per_dataset
    if len(counts) != len(sources):
        raise ValueError(f"--per-dataset: one count for all or one per data set ({len(sources)}), got {len(counts)}")
    examples = [e for path, n in zip(sources, counts, strict=True) for e in sample(load_qa(path), n, args.seed)]
    retriever = build_retriever(args.retriever, args.corpus, args.k)
    rows, report = build_warmup(
        SmartRAGPolicy.load(args.policy or "embedded-base"),
        retriever,
        examples,
        rewrites=args.rewrites,
        seed=args.seed,
        no_search=args.no_search_examples,
        preview=args.preview,
    )
    write_warmup(rows, report, args.output)
    print(json.dumps(report))
    return 0


def train_export(args: argparse.Namespace) -> int:
    from .export import export_adapter

    print(export_adapter(args.adapter, args.output))
    return 0


def train_gate(args: argparse.Namespace) -> int:
    from datetime import date

    from langchain_smartrag.graph import create_smartrag_graph
    from langchain_smartrag.policy import SmartRAGPolicy
    from langchain_smartrag.retrievers import build_retriever
    from langchain_smartrag.scoring import ALPHA, ALPHA_PREVIEW

    from .gate import decision_features, fit_gate, plot_curve
    from .pairs import drawn_apart, play_pairs, read_pairs
    from .questions import covered
    from .strategies import score_rule_threshold
    from .warmup import warmup_ids

    output = Path(args.output_dir)
    pairs_path = Path(args.pairs) if args.pairs else output / "pairs.jsonl"
    policy = SmartRAGPolicy.load(args.policy)
    retriever = build_retriever(args.retriever, args.corpus, args.k)
    if not args.fit_only:
        names = [Path(f).name for f in args.data] if args.data else args.datasets
        sources = [Path(f) for f in args.data] if args.data else [dataset_path(n, "train") for n in args.datasets]
        counts = args.per_dataset * len(sources) if len(args.per_dataset) == 1 else args.per_dataset
        if len(counts) != len(sources):
            raise ValueError(
                f"--per-dataset: one count for all or one per data set ({len(sources)}), got {len(counts)}"
            )
        sets = {
            name: [e for e in load_qa(path) if covered(e) or not args.covered_only]
            for name, path in zip(names, sources, strict=True)
        }
        exclude = frozenset().union(*(warmup_ids(f) for f in args.exclude))
        examples = drawn_apart(sets, dict(zip(names, counts, strict=True)), args.seed, exclude)
        graph = create_smartrag_graph(policy, retriever, decision="token")
        play_pairs(graph, examples, pairs_path, batch_size=args.batch_size)
    pairs = read_pairs(pairs_path)
    if len(pairs) < 40:
        raise ValueError(f"{pairs_path}: {len(pairs)} paired questions; a gate needs at least 40 (more is better)")
    rows = decision_features(policy, retriever, [p["question"] for p in pairs])
    trained_under = {
        "policy": args.policy or "embedded",
        "retriever": args.retriever,
        "corpus": args.corpus or "bundled",
        "k": args.k,
        "alpha": ALPHA,
        "probe_cost": ALPHA_PREVIEW,
        "date": date.today().isoformat(),
    }
    threshold = score_rule_threshold(
        [r["index"]["top_score"] for r in rows],
        [p["search"]["reward"] for p in pairs],
        [p["answer"]["reward"] for p in pairs],
    )  # the score rule `smartrag eval --compare` sets beside the gate, tuned on the same train pairs
    trained_under["score_rule_threshold"] = threshold if math.isfinite(threshold) else None
    gate, report = fit_gate(rows, pairs, probe_cost=ALPHA_PREVIEW, seed=args.seed, trained_under=trained_under)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "report.json", json.dumps(report, indent=1))
    plot_curve(report, output / "gate.png")
    print(
        f"gate: {report['candidate']} threshold {report['threshold']:.2f}; held-out (n={report['held_out']}): "
        f"AUC {report['held_out_auc']:.3f}, reward {report['held_out_reward']:.3f} (never "
        f"{report['held_out_never']:.3f}, always {report['held_out_always']:.3f}, oracle "
        f"{report['held_out_oracle']:.3f}); oracle gap closed {report['held_out_oracle_share']:.2f}"
    )
    print(gate.save(args.save_to or output))
    return 0


def calibrate_gate(args: argparse.Namespace) -> int:
    from langchain_smartrag.graph import create_smartrag_graph
    from langchain_smartrag.policy import SmartRAGPolicy
    from langchain_smartrag.retrievers import build_retriever
    from langchain_smartrag.scoring import ALPHA_PREVIEW

    from .gate import calibrate, decision_features
    from .pairs import play_pairs

    policy = SmartRAGPolicy.load(args.policy)
    if policy.gate is None:
        raise ValueError(
            f"--policy {args.policy or 'embedded'}: no decision gate (gate.json) to calibrate: fit one with "
            "`smartrag train gate`"
        )
    examples = load_qa(args.data)
    if len(examples) < MIN_CALIBRATION:
        raise ValueError(
            f"{args.data}: {len(examples)} labelled questions; calibrating needs at least {MIN_CALIBRATION} (it is "
            "meant for 50-200)"
        )
    retriever = build_retriever(args.retriever, args.corpus, args.k)
    output = Path(args.output_dir)
    graph = create_smartrag_graph(policy, retriever, decision="token")
    ids = {e.id for e in examples}
    pairs = [
        p for p in play_pairs(graph, examples, output / "pairs.jsonl", batch_size=args.batch_size) if p["id"] in ids
    ]
    rows = decision_features(policy, retriever, [p["question"] for p in pairs])
    gate, report = calibrate(policy.gate, rows, pairs, probe_cost=ALPHA_PREVIEW, seed=args.seed)
    atomic_write_text(output / "report.json", json.dumps(report, indent=1))
    rewards = ", ".join(f"{name} {value:.3f}" for name, value in report["cross_validated_reward"].items())
    print(
        f"calibrated on {len(pairs)} questions: {report['chosen']} (threshold {report['threshold']:.2f}); "
        f"cross-validated reward: {rewards}; never {report['never']:.3f}, always {report['always']:.3f}"
    )
    print(gate.save(args.save_to or output))
    return 0


MIN_CALIBRATION = 20
"""Fewer labelled questions than this cannot say which threshold is better."""


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""The shipped training recipe (package data)."""


def config_file(name: str) -> Path:
    """A `--config` value: a YAML file's path, or the name of a shipped config (`sft_embedded`, `smartrag_paired`)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if path.name == name and shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ValueError(f"--config {name}: no such file, and no shipped config of that name ({known})")


def read_config(name: str, config_class: type) -> dict[str, Any]:
    """A `--config` file's fields: YAML that does not parse, or is not a mapping of fields, raises naming the file."""
    import yaml

    path = config_file(name)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"--config {path}: not UTF-8 text ({error.reason}): save it as UTF-8") from error
    except OSError as error:
        raise ValueError(f"--config {path}: cannot read it ({error.strerror or error})") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(
            f"--config {path}: not valid YAML ({where}{problem}): fix it, one `field: value` a line"
        ) from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(
            f"--config {path}: expected field: value lines (a mapping of {config_class.__name__} "
            f"fields), got a {'list' if isinstance(values, list) else type(values).__name__}"
        )
    return values


def add_retriever_flag(parser: argparse.ArgumentParser) -> None:
    """`--retriever` for the commands that build one from flags (PPO takes it as a config field)."""
    parser.add_argument(
        "--retriever",
        default="local",
        metavar="local|web|MODULE:FACTORY",
        help="the retriever: BM25 over --corpus, DuckDuckGo, or your factory returning a LangChain retriever",
    )


def flag_help(f: Any, docs: dict[str, str]) -> str:
    """A field's `--help`: its docstring and the dataclass's default (the flag's own default stays None)."""
    import dataclasses

    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return docs.get(f.name, "").replace("%", "%%") + " (required)"
    if isinstance(default, list):
        default = " ".join(map(str, default)) or "[]"
    elif isinstance(default, dict):
        default = " ".join(f"{k}={v}" for k, v in default.items()) or "{}"
    return f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--flag` per dataclass field, its help the field's docstring; defaults stay None so a YAML config can fill
    what flags leave out."""
    import dataclasses

    import yaml

    docs = field_docs(cls)
    scalars = {"int": int, "float": float, "Any": yaml.safe_load}  # any other type is read as text
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        base = kind.removesuffix(" | None")
        help_text = flag_help(f, docs)
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base.startswith("list["):
            parser.add_argument(
                flag,
                nargs="+",
                type=scalars.get(base[len("list[") : -1], str),
                default=None,
                metavar=f.name.upper(),
                help=help_text,
            )
        elif base.startswith("dict[str, "):
            parser.add_argument(
                flag,
                nargs="+",
                action=_KeyValues,
                convert=scalars.get(base[len("dict[str, ") : -1], str),
                default=None,
                metavar="KEY=VALUE",
                help=help_text,
            )
        else:
            convert = scalars.get(base, yaml.safe_load if "|" in base else str)  # `bool | list[str]`: YAML
            if kind.endswith("| None"):  # `--flag none` sets None
                convert = functools.partial(_none_or, convert)
            parser.add_argument(flag, type=convert, default=None, metavar=f.name.upper(), help=help_text)


class _KeyValues(argparse.Action):
    """`--flag a=1 b=2` -> {"a": 1, "b": 2}, each value converted."""

    def __init__(self, *args: Any, convert: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        import yaml

        pairs = {}
        for text in values:
            key, equals, value = text.partition("=")
            if not key or not equals:
                parser.error(f"{option_string}: expected KEY=VALUE, got {text!r}")
            try:
                pairs[key] = self.convert(value)
            except ValueError:
                parser.error(f"{option_string}: expected KEY=VALUE, got {text!r}")
            except yaml.YAMLError as error:
                problem = getattr(error, "problem", None) or str(error).splitlines()[0]
                parser.error(
                    f"{option_string}: {text} is not valid YAML ({problem}): quote the value if it is text "
                    f"({key}='...')"
                )
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

    train: Callable[..., Path]
    config_class: type
    if args.stage == "sft":
        from .sft import SFTConfig as config_class
        from .sft import train
    else:
        from .ppo import train
        from .ppo_config import PPOConfig as config_class

    values: dict[str, Any] = read_config(args.config, config_class) if args.config else {}
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(
            f"--config {args.config}: unknown config fields {sorted(map(str, unknown))} (the fields: "
            f"smartrag train {args.stage} --help)"
        )
    values.update(dataclass_flag_values(args, config_class))
    missing = [
        f.name
        for f in dataclasses.fields(config_class)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values
    ]
    if missing:
        raise ValueError(
            f"smartrag train {args.stage}: give --{missing[0].replace('_', '-')} or a config with `{missing[0]}:`"
        )
    print(train(config_class(**values)))
    return 0


def add_calibrate_command(commands: Any) -> None:
    """fit the decision gate's threshold (and score scale) to your own retriever and questions

    Adds `calibrate` to an argparse subparsers object (an entry point of `langchain_smartrag.commands`; the line
    above is its help in `smartrag --help`)."""
    p = commands.add_parser("calibrate", help=(add_calibrate_command.__doc__ or "").splitlines()[0])
    p.add_argument("--data", required=True, help="50-200 of your own labelled questions: QA JSONL(.gz) rows")
    p.add_argument("--policy", help="model or adapter directory with a gate.json (default: the trained embedded one)")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved index (default: the bundled corpus)")
    add_retriever_flag(p)
    p.add_argument("--k", type=positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=16, help="questions per graph.batch")
    p.add_argument("--output-dir", default="runs/calibrate", help="pairs.jsonl (resumable) and report.json")
    p.add_argument(
        "--save-to",
        help="folder for the calibrated gate.json: your policy's folder makes it its default (default: OUTPUT_DIR)",
    )
    p.set_defaults(run=calibrate_gate)


def add_eval_command(commands: Any) -> None:
    """score a QA set in one mode: EM, F1, reward, retrieval rate, hit

    Adds `eval` to an argparse subparsers object (an entry point of `langchain_smartrag.commands`; the line above is
    its help in `smartrag --help`)."""
    p = commands.add_parser("eval", help=(add_eval_command.__doc__ or "").splitlines()[0])
    p.add_argument("--data", help="QA JSONL(.gz) with id, question, answers")
    p.add_argument("--dataset", help="the repository's own data set (popqa, ambignq, hotpotqa, nq, triviaqa, ...)")
    p.add_argument("--split", default="dev")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved BM25 index directory (default: the bundled corpus)")
    add_retriever_flag(p)
    p.add_argument(
        "--mode",
        default="smartrag",
        choices=["smartrag", "no-retrieval", "always-retrieve", "always-retrieve-question"],
    )
    p.add_argument(
        "--policy", help="model or peft adapter directory, or embedded-base (default: the trained embedded policy)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="smartrag mode: retrieve when P(search) >= this (default: the gate's own, or 0.5 for the token)",
    )
    p.add_argument(
        "--decision",
        choices=["gate", "token"],
        help="smartrag mode: who takes the first decision (default: the gate where the policy has one)",
    )
    p.add_argument(
        "--preview",
        type=non_negative_int,
        help="smartrag mode: titles of the top hits the first decision sees (default: the policy's own)",
    )
    p.add_argument("--limit", type=positive_int, help="score only the first N questions (after the seeded shuffle)")
    p.add_argument("--seed", type=int, default=0, help="shuffles the questions before --limit; seeds torch")
    p.add_argument("--k", type=positive_int, default=4, help="documents per retrieval")
    p.add_argument("--batch-size", type=positive_int, default=32, help="questions per graph.batch")
    p.add_argument("--output", required=True, help="results JSON")
    p.add_argument(
        "--compare",
        action="store_true",
        help="play every question with the search forced and with the answer forced, and report every first-decision "
        "strategy (never, always-retrieve, title rule, score rule, token, gate, oracle) with paired standard errors "
        "against the best fixed one (replaces --mode)",
    )
    p.add_argument(
        "--check-format",
        action="store_true",
        help="also generate each first turn with no forced prefix: free_format_error_rate",
    )
    p.set_defaults(run=evaluate)


FIELD_USAGE = "%(prog)s [-h] [--config CONFIG] [--FIELD VALUE ...]"
"""The usage line of `train sft|ppo`, whose flags (one per config field) the help lists below it."""


def add_train_command(commands: Any) -> None:
    """build warm-up data, run SFT, run PPO, fit the decision gate, export an adapter

    Adds `train warmup|sft|ppo|gate|export` to an argparse subparsers object (an entry point of
    `langchain_smartrag.commands`; the line above is its help in `smartrag --help`)."""
    from .ppo_config import PPOConfig
    from .sft_config import SFTConfig

    summary = (add_train_command.__doc__ or "").splitlines()[0]
    stages = commands.add_parser("train", help=summary).add_subparsers(dest="stage", required=True)
    _add_warmup(stages)
    for stage, config, shipped, help in (
        ("sft", SFTConfig, "sft_embedded", "supervised warm-up (LoRA by default); every config field is a flag"),
        ("ppo", PPOConfig, "smartrag_paired", "PPO with the retriever in the loop (from an SFT adapter: --init DIR)"),
    ):
        p = stages.add_parser(stage, usage=FIELD_USAGE, help=help)
        p.add_argument(
            "--config",
            help=f"YAML file of {config.__name__} fields, or a shipped config's name ({shipped}); flags override it",
        )
        add_dataclass_flags(p, config)
        p.set_defaults(run=train_stage)
    _add_gate(stages)
    p = stages.add_parser("export", help="a trained adapter as bf16, its base recorded portably, for shipping")
    p.add_argument("adapter", help="the adapter directory (e.g. runs/smartrag-paired/best)")
    p.add_argument("--output", required=True, help="where to write it (a model card there is kept)")
    p.set_defaults(run=train_export)


def _add_warmup(stages: Any) -> None:
    """`train warmup`'s flags."""
    p = stages.add_parser("warmup", help="build SFT warm-up examples from QA train splits")
    p.add_argument(
        "--datasets", nargs="+", default=["popqa", "ambignq", "hotpotqa"], help="bundled data sets to draw from"
    )
    p.add_argument("--data", nargs="+", metavar="FILE", help="your own QA JSONL(.gz) files instead of --datasets")
    p.add_argument("--split", default="train")
    p.add_argument(
        "--per-dataset",
        type=positive_int,
        nargs="+",
        default=[400],
        help="questions sampled from each data set: one count for all, or one per data set",
    )
    p.add_argument(
        "--rewrites",
        type=non_negative_int,
        default=2,
        help="sampled rewrites tried when the question retrieves no answer",
    )
    p.add_argument("--policy", help="model or adapter directory (default: the bare embedded model, embedded-base)")
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved index (default: the bundled corpus)")
    add_retriever_flag(p)
    p.add_argument("--k", type=positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-search-examples",
        action="store_true",
        help="label the questions that nothing answers [Answer] (decision only; not the paper's protocol)",
    )
    p.add_argument(
        "--preview",
        type=non_negative_int,
        default=0,
        help="decision examples show the titles of the question's top N hits (as `--preview` in the graph)",
    )
    p.add_argument("--output", default="runs/warmup.jsonl")
    p.set_defaults(run=train_warmup)


def _add_gate(stages: Any) -> None:
    """`train gate`'s flags."""
    p = stages.add_parser(
        "gate",
        help="learn the decision gate from paired episodes (each question searched and answered) through the graph",
    )
    p.add_argument("--policy", help="model or adapter directory (default: the trained embedded policy)")
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["popqa", "ambignq", "hotpotqa", "nq", "2wikimultihopqa", "musique"],
        help="bundled data sets whose train split is played",
    )
    p.add_argument("--data", nargs="+", metavar="FILE", help="your own QA JSONL(.gz) files instead of --datasets")
    p.add_argument(
        "--per-dataset",
        type=positive_int,
        nargs="+",
        default=[200],
        help="questions drawn from each data set: one count for all, or one per data set",
    )
    p.add_argument("--covered-only", action="store_true", help="only questions the bundled corpus covers")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="WARMUP",
        help="warm-up files whose questions are left out (the policy was trained on them)",
    )
    p.add_argument("--corpus", help="corpus JSONL(.gz) or saved index (default: the bundled corpus)")
    add_retriever_flag(p)
    p.add_argument("--k", type=positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=16, help="questions per graph.batch")
    p.add_argument("--output-dir", default="runs/gate", help="pairs.jsonl (resumable), report.json, gate.png")
    p.add_argument("--pairs", help="the pairs file (default: OUTPUT_DIR/pairs.jsonl)")
    p.add_argument("--fit-only", action="store_true", help="fit on the pairs already played; play no episodes")
    p.add_argument(
        "--save-to",
        help="folder for gate.json: the policy's folder makes it the policy's default decision (default: OUTPUT_DIR)",
    )
    p.set_defaults(run=train_gate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartrag", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_eval_command(commands)
    add_calibrate_command(commands)
    add_train_command(commands)
    return run_command(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
