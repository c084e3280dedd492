"""The training configs as a user reads them: every field documented in one line, that line its flag's `--help`, and
a value out of range refused by name before any model loads."""

import ast
import dataclasses
import inspect
import itertools
import textwrap
from pathlib import Path

import pytest

from langchain_smartrag.cli import main
from langchain_smartrag.training import cli as training_cli
from langchain_smartrag.training.config import field_docs
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.sft import SFTConfig

CONFIGS = {"ppo": PPOConfig, "sft": SFTConfig}


def raw_docstrings(cls: type) -> dict[str, str]:
    """The string right under each field in the class body, as written."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    return {
        node.target.id: after.value.value
        for node, after in itertools.pairwise(body)
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    }


def squeeze(text: str) -> str:
    return "".join(text.split())  # argparse wraps help lines wherever it likes


@pytest.mark.parametrize("cls", CONFIGS.values(), ids=CONFIGS)
def test_every_field_has_a_one_line_docstring(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    docs = raw_docstrings(cls)
    assert [name for name in names if name not in docs] == []
    assert {name: doc for name, doc in docs.items() if "\n" in doc or not doc.strip()} == {}
    assert field_docs(cls) == {name: docs[name] for name in names}


@pytest.mark.parametrize("stage", CONFIGS)
def test_train_help_shows_each_fields_docstring_and_default(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", stage, "--help"])  # through the `langchain_smartrag.commands` entry point, in this process
    assert exit_.value.code == 0
    out = squeeze(capsys.readouterr().out)
    for name, doc in field_docs(CONFIGS[stage]).items():
        assert squeeze(f"--{name.replace('_', '-')}") in out and squeeze(f"--{name}") in out
        assert squeeze(doc) in out, name
    assert squeeze("AdamW") in out and "(default:" in out
    if stage == "ppo":
        assert squeeze("(default: 2e-05)") in out and "20%" in out  # a % in a docstring is not a format
    else:
        assert squeeze("(required)") in out  # `data` has no default


def test_the_training_module_runs_its_own_parser(capsys):
    """What `python -m langchain_smartrag.training.cli` (and `accelerate launch -m`) runs."""
    with pytest.raises(SystemExit):
        training_cli.main(["train", "ppo", "--help"])
    assert squeeze(field_docs(PPOConfig)["clip_range"]) in squeeze(capsys.readouterr().out)


@pytest.mark.parametrize("cls", CONFIGS.values(), ids=CONFIGS)
def test_a_negative_learning_rate_is_refused_by_name(cls):
    required = {"data": "rows.jsonl"} if cls is SFTConfig else {}
    with pytest.raises(ValueError, match=r"^learning_rate must be > 0, got -1.0$"):
        cls(**required, learning_rate=-1.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": 0.0}, "temperature must be > 0, got 0.0"),
        ({"clip_range": -0.2}, "clip_range must be > 0, got -0.2"),
        ({"target_kl": 0}, "target_kl must be > 0, got 0"),
        ({"gamma": 1.5}, "gamma must be >= 0 and <= 1, got 1.5"),
        ({"threshold": -0.1}, "threshold must be >= 0 and <= 1, got -0.1"),
        ({"init_kl_coef": -0.01}, "init_kl_coef must be >= 0, got -0.01"),
        ({"alpha": float("nan")}, "alpha must be a number, got nan"),
        ({"learning_rate": "2e-5"}, "learning_rate must be a number, got the text '2e-5'"),
        ({"max_retrievals": -1}, "max_retrievals must be a whole number >= 0, not -1"),
        ({"rollout_batch_size": 0}, "rollout_batch_size must be a whole number >= 1, not 0"),
    ],
)
def test_ppo_values_out_of_range_are_refused(values, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        PPOConfig(**values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lora_dropout": 1.0}, "lora_dropout must be >= 0 and < 1, got 1.0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0, got -0.1"),
        ({"warmup_steps": -1}, "warmup_steps must be a whole number >= 0, not -1"),
    ],
)
def test_sft_values_out_of_range_are_refused(values, message):
    with pytest.raises(ValueError, match="^" + message):
        SFTConfig(data="rows.jsonl", **values)


def test_the_edges_and_nones_that_mean_something_are_accepted():
    PPOConfig(target_kl=None, init_kl_coef=0.0, alpha=0, threshold=1.0, gamma=0.0, max_retrievals=0, learning_rate=1)
    SFTConfig(data="rows.jsonl", lora_dropout=0.0, max_steps=None, warmup_steps=0)


def test_a_bad_flag_value_is_one_line_naming_the_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ppo", "--learning-rate", "-1", "--output-dir", "unused"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "smartrag: error: learning_rate must be > 0, got -1.0\n"


def parse_stage(argv: list[str]) -> dict:
    """The config fields `smartrag train STAGE ARGV` parses to, before any model loads."""
    import argparse

    parser = argparse.ArgumentParser(prog="smartrag")
    training_cli.add_train_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *argv])
    cls = CONFIGS[args.stage]
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--covered-only", "false"], {"covered_only": False}),
        (["--covered-only", "[hotpotqa]"], {"covered_only": ["hotpotqa"]}),
        (["--target-kl", "none", "--learning-rate", "1e-5"], {"target_kl": None, "learning_rate": 1e-5}),
        (["--no-bf16", "--report-to", "tensorboard"], {"bf16": False, "report_to": ["tensorboard"]}),
        (["--value_clip_range", "0.3", "--cliprange", "0.1"], {"value_clip_range": 0.3, "clip_range": 0.1}),
    ],
)
def test_flags_parse_to_the_fields_they_name(flags, expected):
    values = parse_stage(["ppo", *flags])
    assert {name: values[name] for name in expected} == expected
    assert values["iterations"] == 20  # a field no flag names keeps its default
    PPOConfig(**values)


def test_trl_names_are_flags_and_config_keys_beside_ours(tmp_path):
    config = tmp_path / "trl.yaml"
    config.write_text("model_name_or_path: tiny\nper_device_train_batch_size: 4\nnum_train_epochs: 3\nlora_r: 8\n")
    values = parse_stage(
        [
            "sft",
            "--config",
            str(config),
            "--data",
            "rows.jsonl",
            "--gradient_accumulation_steps",
            "2",
            "--max-steps",
            "5",
        ]
    )
    assert {k: values[k] for k in ("base_model", "batch_size", "epochs", "lora_r", "grad_accum", "max_steps")} == {
        "base_model": "tiny",
        "batch_size": 4,
        "epochs": 3,
        "lora_r": 8,
        "grad_accum": 2,
        "max_steps": 5,
    }
    assert (
        parse_stage(["sft", "--config", str(config), "--data", "x", "--per-device-train-batch-size", "16"])[
            "batch_size"
        ]
        == 16
    )  # a flag overrides the file, under either name


def test_a_config_value_is_the_configs_own_type_not_reparsed_as_a_flag(tmp_path):
    """YAML has typed a value already: text stays text for the config's own check to judge, in one line."""
    config = tmp_path / "c.yaml"
    config.write_text("data: rows.jsonl\nmax_steps: many\nreport_to: [tensorboard]\n")
    values = parse_stage(["sft", "--config", str(config)])
    assert values["max_steps"] == "many" and values["report_to"] == ["tensorboard"]
    with pytest.raises(ValueError, match=r"^max_steps must be a whole number >= 1 \(or none\), not 'many'$"):
        SFTConfig(**values)


def test_a_field_named_twice_in_a_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "twice.yaml"
    config.write_text("batch_size: 4\nper_device_train_batch_size: 8\n")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "sft", "--config", str(config)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"smartrag: error: --config {config}: per_device_train_batch_size and batch_size set the same field: keep one\n"
    )


def test_the_shipped_accelerate_configs_resolve_by_name(capsys):
    """`accelerate launch --config_file "$(smartrag train accelerate-config ddp)"` works from an installed wheel."""
    import yaml

    for name in ("ddp", "fsdp", "zero2"):
        assert main(["train", "accelerate-config", name]) == 0
        path = capsys.readouterr().out.strip()
        assert path.endswith(f"{name}.yaml") and "distributed_type" in yaml.safe_load(Path(path).read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["train", "accelerate-config", "zero9"])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err
        == "smartrag: error: no shipped accelerate config 'zero9': give one of ddp, fsdp, zero2\n"
    )
