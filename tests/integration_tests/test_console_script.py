"""The installed `smartrag` console script answers offline, in a process of its own (the in-process CLI is
`tests/unit_tests/test_cli.py`)."""

import os
import subprocess
import sys


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
