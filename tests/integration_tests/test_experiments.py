"""Every script under experiments/ starts as its docstring says: `python experiments/<folder>/<script>.py --help`,
from the repository root, exits 0 and prints its usage.

`--help` parses no data and loads no model (importing torch is fine), so this catches imports that broke when
code moved. The scripts run in parallel subprocesses, as many at a time as there are CPUs.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "experiments").glob("*/*.py"))
EXCLUDED: dict[str, str] = {}
"""Scripts that cannot run against today's code, with the reason; the folder's README names the commit where they
run. None at present."""


def run_help(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    """Each script's `--help` run, all of them started together (imports dominate, and they overlap)."""
    scripts = [s for s in SCRIPTS if s not in EXCLUDED]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(scripts, pool.map(run_help, scripts), strict=True))


def test_there_are_scripts_and_every_exclusion_names_one():
    assert len(SCRIPTS) >= 8
    assert set(EXCLUDED) <= set(SCRIPTS)


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in EXCLUDED])
def test_the_script_starts_as_its_docstring_says(script, helps):
    docstring = ast.get_docstring(ast.parse((ROOT / script).read_text())) or ""
    assert f"python {script}" in docstring, f"{script}'s docstring does not say how to run it"
    done = helps[script]
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
