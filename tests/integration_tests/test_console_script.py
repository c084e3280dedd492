"""The installed `smartrag` console script answers offline, in a process of its own (the in-process CLI is
`tests/unit_tests/test_cli.py`)."""

import os
import subprocess
import sys

import pytest


def test_the_console_script_runs_offline(tiny_model_dir, corpus_file):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    smartrag = os.path.join(os.path.dirname(sys.executable), "smartrag")
    result = subprocess.run(
        [smartrag, "ask", "Who wrote Hamlet?", "--policy", str(tiny_model_dir), "--corpus", str(corpus_file)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Q: Who wrote Hamlet?\nA: ")


@pytest.mark.parametrize(
    "command",
    [["--help"], ["eval", "--help"], ["train", "--help"], ["train", "sft", "--help"], ["train", "ppo", "--help"]],
    ids=" ".join,
)
def test_help_loads_no_model_stack(command):
    """`smartrag --help` and each command's help list flags without loading the model stack: a second or two, not
    ten. `train`'s stages parse with transformers' `HfArgumentParser` (transformers' light top level, never torch or
    TRL); the rest load none of it. Python's own import profile (`PYTHONPROFILEIMPORTTIME`, one stderr line per
    module) says what loaded."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPROFILEIMPORTTIME": "1"}
    smartrag = os.path.join(os.path.dirname(sys.executable), "smartrag")
    result = subprocess.run([smartrag, *command], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: smartrag"), result.stderr
    loaded = {line.rpartition("|")[2].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    heavy = {"torch", "trl"} if command[0] == "train" else {"torch", "transformers", "trl"}
    assert "langchain_smartrag" in loaded and not loaded & heavy
