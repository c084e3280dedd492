"""The training commands of `smartrag`: `eval`, and `train warmup|sft|ppo|gate|export`.

`add_eval_command` and `add_train_command` are entry points of the `langchain_smartrag.commands` group
(pyproject.toml), which `smartrag` imports only when one of them runs (`smartrag ask` and `--help` never load the
trainers). The model stack (torch, transformers, the graph) is imported inside each command's function, so that
`smartrag eval --help` and `smartrag train sft --help` stay quick. Also runs as
`python -m langchain_smartrag.training.cli` (what `accelerate launch -m` starts).
"""

from __future__ import annotations

import argparse
import json
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
    from .gate import compare_strategies
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
        results = compare_strategies(graph, policy, retriever, examples, batch_size=args.batch_size, config=config)
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


def train_warmup(args: argparse.Namespace) -> int:
    from langchain_smartrag.policy import SmartRAGPolicy
    from langchain_smartrag.retrievers import build_retriever
    from langchain_smartrag.retrievers.bm25 import BM25Retriever

    from .warmup import build_warmup, gold_titles, reading_rows, write_warmup

    check_writable(Path(args.output))
    sources = [Path(f) for f in args.data] if args.data else [dataset_path(name, args.split) for name in args.datasets]
    counts = args.per_dataset * len(sources) if len(args.per_dataset) == 1 else args.per_dataset
    if len(counts) != len(sources):
        raise ValueError(f"--per-dataset: one count for all or one per data set ({len(sources)}), got {len(counts)}")
    examples = [e for path, n in zip(sources, counts, strict=True) for e in sample(load_qa(path), n, args.seed)]
    retriever = build_retriever(args.retriever, args.corpus, args.k)
    policy = SmartRAGPolicy.load(args.policy or "embedded-base")
    rows, report = build_warmup(
        policy,
        retriever,
        examples,
        rewrites=args.rewrites,
        seed=args.seed,
        no_search=args.no_search_examples,
        preview=args.preview,
    )
    if args.reading_per_dataset:
        if not isinstance(retriever, BM25Retriever):
            raise ValueError(
                "--reading-per-dataset reads the gold passages from a BM25 corpus: give --corpus, not --retriever"
            )
        passages = {str(d.metadata.get("title")): d for d in retriever.documents}
        drawn = {e.id for e in examples}
        reading = [
            e
            for path in sources
            for e in sample(
                [e for e in load_qa(path) if e.id not in drawn and gold_titles(e)], args.reading_per_dataset, args.seed
            )
        ]
        extra, report["reading"] = reading_rows(policy, retriever, reading, passages, seed=args.seed)
        rows = rows + extra
        report["mix"]["reading"] = len(extra)
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

    from .gate import gate_from_pairs, plot_curve
    from .pairs import draft_pairs, drawn_apart, play_pairs, read_pairs
    from .questions import covered
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
        if args.reader:
            draft_pairs(policy, retriever, examples, pairs_path, batch_size=args.batch_size)
        else:
            graph = create_smartrag_graph(policy, retriever, decision="token")
            play_pairs(graph, examples, pairs_path, batch_size=args.batch_size)
    pairs = read_pairs(pairs_path)
    if len(pairs) < 40:
        raise ValueError(f"{pairs_path}: {len(pairs)} paired questions; a gate needs at least 40 (more is better)")
    trained_under = {
        "policy": args.policy or "embedded",
        "retriever": args.retriever,
        "corpus": args.corpus or "bundled",
        "k": args.k,
        "alpha": ALPHA,
        "probe_cost": ALPHA_PREVIEW,
        "date": date.today().isoformat(),
    }
    gate, report = gate_from_pairs(policy, retriever, pairs, seed=args.seed, trained_under=trained_under)
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
    from .pairs import draft_pairs, play_pairs

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
    ids = {e.id for e in examples}
    if policy.gate.reads_reader:
        drafted = draft_pairs(policy, retriever, examples, output / "pairs.jsonl", batch_size=args.batch_size)
        pairs = [p for p in drafted if p["id"] in ids]
        rows = [p["features"] for p in pairs]
    else:
        graph = create_smartrag_graph(policy, retriever, decision="token")
        played = play_pairs(graph, examples, output / "pairs.jsonl", batch_size=args.batch_size)
        pairs = [p for p in played if p["id"] in ids]
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


TRL_NAMES: dict[str, tuple[str | None, str | None]] = {
    "model_name_or_path": ("base_model", "base_model"),
    "use_peft": ("lora", None),
    "per_device_train_batch_size": ("batch_size", None),
    "gradient_accumulation_steps": ("grad_accum", None),
    "num_train_epochs": ("epochs", None),
    "save_steps": ("save_every", "save_every"),
    "save_total_limit": ("keep_checkpoints", "keep_checkpoints"),
    "logging_steps": ("log_every", None),
    "num_ppo_epochs": (None, "ppo_epochs"),
    "cliprange": (None, "clip_range"),
    "cliprange_value": (None, "value_clip_range"),
}
"""TRL's and transformers' names (TrainingArguments, TRL's ModelConfig and its former PPOConfig) -> our SFT field and
our PPO field, None where the stage has none: each works as a YAML key and a flag beside ours. The names both share
(`learning_rate`, `max_steps`, `output_dir`, `lora_r`, `warmup_steps`, `seed`, `report_to`...) need no row."""


def trl_names(config_class: type) -> dict[str, str]:
    """`TRL_NAMES` for one config class: TRL's name -> our field."""
    column = 0 if config_class.__name__ == "SFTConfig" else 1
    return {trl: field for trl, ours in TRL_NAMES.items() if (field := ours[column]) is not None}


class _OrNone:
    """An argparse type for an optional field: `none` (or `null`) is None, anything else is converted."""

    def __init__(self, convert: Callable[[str], Any]) -> None:
        self.convert, self.__name__ = convert, getattr(convert, "__name__", "value")

    def __call__(self, text: str) -> Any:
        return None if text.lower() in ("none", "null") else self.convert(text)


def _yaml_value(text: str) -> Any:
    """An argparse type for a field of several types (`bool | list[str]`, `Any`): the text as YAML reads it."""
    import yaml

    return yaml.safe_load(text)


def flag_field(f: Any, hint: Any, doc: str, aliases: list[str]) -> Any:
    """A copy of a config field as `HfArgumentParser` reads it: the docstring as its help, TRL's names as aliases, and
    a type it can parse where the field's own is not one (`x | None` takes `none`; a dict takes KEY=VALUE pairs;
    `bool | list[str]` and `Any` take YAML)."""
    import copy
    import dataclasses
    import types
    import typing

    import yaml

    scalars: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str, Any: yaml.safe_load}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    metadata: dict[str, Any] = {
        "help": doc.replace("%", "%%") + (" (required)" if required else ""),
        "aliases": aliases,
    }
    inner = args[0] if union and len(args) == 1 else hint
    flag = copy.copy(f)
    if typing.get_origin(inner) is dict:
        convert = scalars.get(typing.get_args(inner)[1], str)
        metadata.update(action=_KeyValues, nargs="+", convert=convert, metavar="KEY=VALUE")
        flag.type = str
    elif union and len(args) == 1 and args[0] in scalars:
        flag.type = _OrNone(scalars[args[0]])
    elif union or hint is Any:
        flag.type = _yaml_value
    else:
        flag.type = hint
    flag.metadata = metadata
    return flag


class _FromConfig:
    """A `--config` file's value as a flag's default: argparse converts a text default as if typed, this it leaves
    alone (YAML has typed it), and the config's own checks judge it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _stage_parser_class() -> type:
    """`StageParser`, built on first use: `transformers.HfArgumentParser` is imported only when `train` runs."""
    from transformers import HfArgumentParser

    class StageParser(HfArgumentParser):
        """The parser of each `train` stage. With a config class (`sft`, `ppo`): HfArgumentParser's flag per field
        (`--field_name` and `--field-name`, TRL's names beside ours, its docstring and default in `--help`) and
        `--config FILE`, whose values are the defaults the flags override (as TRL's `TrlParser` does)."""

        def __init__(self, config_class: type | None = None, **kwargs: Any) -> None:
            import dataclasses
            import typing

            if config_class is None:
                kwargs.setdefault("formatter_class", argparse.HelpFormatter)  # helps that give defaults themselves
            super().__init__(**kwargs)
            self.config_class = config_class
            if config_class is None:
                return
            docs, hints = field_docs(config_class), typing.get_type_hints(config_class)
            aliases: dict[str, list[str]] = {}
            for trl, ours in trl_names(config_class).items():
                aliases.setdefault(ours, []).extend(dict.fromkeys([f"--{trl}", f"--{trl.replace('_', '-')}"]))
            for f in dataclasses.fields(config_class):
                self._parse_dataclass_field(self, flag_field(f, hints[f.name], docs[f.name], aliases.get(f.name, [])))
            for action in self._actions:
                if action.required:  # a --config file may give it: `train_stage` says which is missing
                    action.required, action.default = False, argparse.SUPPRESS

        def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
            if self.config_class is not None:
                args = list(sys.argv[1:] if args is None else args)
                first = argparse.ArgumentParser(add_help=False)
                first.add_argument("--config")
                name = first.parse_known_args(args)[0].config
                if name is not None:
                    try:
                        values = config_values(name, self.config_class)
                    except ValueError as error:
                        self.exit(2, f"smartrag: error: {' '.join(str(error).split())}\n")
                    for action in self._actions:
                        if action.dest in values:
                            action.default = _FromConfig(values[action.dest])
            parsed, rest = super().parse_known_args(args, namespace)
            for key, value in vars(parsed).items():
                if isinstance(value, _FromConfig):
                    setattr(parsed, key, value.value)
            return parsed, rest

    return StageParser


def config_values(name: str, config_class: type) -> dict[str, Any]:
    """A `--config` file's values by our field names (TRL's names mapped by `TRL_NAMES`); a key that names no field,
    or a field named twice, raises one line naming the file and the close match."""
    import dataclasses
    import difflib

    values = read_config(name, config_class)
    names, aliases = {f.name for f in dataclasses.fields(config_class)}, trl_names(config_class)
    unknown = sorted(str(key) for key in values if key not in names and key not in aliases)
    if unknown:
        close = [
            f"{key}: did you mean {match[0]}?"
            for key in unknown
            if (match := difflib.get_close_matches(key, [*names, *aliases], n=1))
        ]
        stage = "sft" if config_class.__name__ == "SFTConfig" else "ppo"
        raise ValueError(
            f"--config {name}: unknown config fields {unknown} ({'; '.join([*close, ''])}the fields: smartrag train "
            f"{stage} --help)"
        )
    ours: dict[str, Any] = {}
    for key, value in values.items():
        field_name = aliases.get(key, key)
        if field_name in ours:
            raise ValueError(f"--config {name}: {key} and {field_name} set the same field: keep one")
        ours[field_name] = value
    return ours


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


def train_stage(args: argparse.Namespace) -> int:
    """`smartrag train sft|ppo`: the stage's config from its flags (a `--config` file's values their defaults);
    prints the output."""
    import dataclasses

    train: Callable[..., Path]
    config_class: type
    if args.stage == "sft":
        from .sft import SFTConfig as config_class
        from .sft import train
    else:
        from .ppo import train
        from .ppo_config import PPOConfig as config_class

    fields = dataclasses.fields(config_class)
    values = {f.name: getattr(args, f.name) for f in fields if hasattr(args, f.name)}
    missing = [f.name for f in fields if f.name not in values]
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
    stages = commands.add_parser("train", help=summary).add_subparsers(
        dest="stage", required=True, parser_class=_stage_parser_class()
    )
    _add_warmup(stages)
    for stage, config, shipped, help in (
        ("sft", SFTConfig, "sft_embedded", "supervised warm-up (LoRA by default); every config field is a flag"),
        ("ppo", PPOConfig, "smartrag_paired", "PPO with the retriever in the loop (from an SFT adapter: --init DIR)"),
    ):
        p = stages.add_parser(stage, config_class=config, usage=FIELD_USAGE, help=help)
        p.add_argument(
            "--config",
            help=f"YAML file of {config.__name__} fields (ours or TRL's names), or a shipped config's name "
            f"({shipped}); flags override it",
        )
        p.set_defaults(run=train_stage)
    _add_gate(stages)
    p = stages.add_parser("export", help="a trained adapter as bf16, its base recorded portably, for shipping")
    p.add_argument("adapter", help="the adapter directory (e.g. runs/smartrag-paired/best)")
    p.add_argument("--output", required=True, help="where to write it (a model card there is kept)")
    p.set_defaults(run=train_export)
    p = stages.add_parser(
        "accelerate-config",
        help="print the path of a shipped `accelerate launch` config: accelerate launch --config_file "
        '"$(smartrag train accelerate-config ddp)" -m langchain_smartrag.cli train sft ...',
    )
    p.add_argument("name", help=f"one of {', '.join(accelerate_configs())} (TRL's names)")
    p.set_defaults(run=print_accelerate_config)


ACCELERATE_DIR = CONFIG_DIR / "accelerate"
"""The shipped `accelerate launch` configs (package data), one YAML file per name."""


def accelerate_configs() -> list[str]:
    """The names of the shipped accelerate configs: ddp, fsdp, zero2."""
    return sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml"))


def accelerate_config(name: str) -> Path:
    """A shipped accelerate config's file by its name, found in the installed package (as TRL resolves its own)."""
    path = ACCELERATE_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if Path(name).name != name or not path.is_file():
        raise ValueError(f"no shipped accelerate config {name!r}: give one of {', '.join(accelerate_configs())}")
    return path


def print_accelerate_config(args: argparse.Namespace) -> int:
    """`smartrag train accelerate-config NAME`: the file's path, for `accelerate launch --config_file`."""
    print(accelerate_config(args.name))
    return 0


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
    p.add_argument(
        "--reading-per-dataset",
        type=non_negative_int,
        default=0,
        help="also reading rows: this many more questions from each data set whose gold passages the BM25 corpus "
        "holds, answered with those passages among the hits (0: none)",
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
        "--reader",
        action="store_true",
        help="a gate that reads the reader: each question's two drafts (closed book, over the probe's hits) are its "
        "pair, one batched pass a question; the graph then answers with the draft the gate picks",
    )
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
