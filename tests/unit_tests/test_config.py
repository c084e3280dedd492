"""The training configs as a user reads them: every field documented in one line, that line its flag's `--help`, and
a value out of range refused by name before any model loads."""

import ast
import dataclasses
import inspect
import itertools
import textwrap

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
        assert squeeze(f"--{name.replace('_', '-')}") in out
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


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--covered-only", "false"], {"covered_only": False}),
        (["--covered-only", "[hotpotqa]"], {"covered_only": ["hotpotqa"]}),
        (["--target-kl", "none", "--learning-rate", "1e-5"], {"target_kl": None, "learning_rate": 1e-5}),
        (["--no-bf16", "--report-to", "tensorboard"], {"bf16": False, "report_to": ["tensorboard"]}),
    ],
)
def test_flags_parse_to_the_fields_they_name(flags, expected):
    import argparse

    parser = argparse.ArgumentParser()
    training_cli.add_dataclass_flags(parser, PPOConfig)
    values = training_cli.dataclass_flag_values(parser.parse_args(flags), PPOConfig)
    assert values == expected
    PPOConfig(**values)
