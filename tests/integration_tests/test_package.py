"""The package as users get it, in fresh interpreters: `smartrag ask` and `--help` load no training code, training is
importable only under the package, and a wheel installs and runs every README command from an empty folder. What the
source alone shows (the public API, the import boundary) is in `tests/unit_tests/test_public_api.py`."""

import importlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ask_and_help_load_no_training_code():
    script = (
        "import sys, contextlib, io\nfrom langchain_smartrag.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "print(sorted(m for m in sys.modules if 'training' in m or m.startswith(('trl', 'accelerate'))))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_training_is_importable_only_under_the_package():
    assert importlib.import_module("langchain_smartrag.training").DATA_DIR.is_dir()
    done = subprocess.run(
        [sys.executable, "-c", "import training"], capture_output=True, text=True, cwd="/", check=False
    )
    assert "No module named 'training'" in done.stderr


def readme_quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.DOTALL).group(1)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_readme_from_an_empty_folder(tmp_path, tiny_model_dir):
    """Build the wheel, install it into a fresh venv outside the repository (its dependencies come from this
    environment through a .pth file, so nothing is downloaded), and run what the README shows."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("langchain_smartrag-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}

    def run(*args: str) -> str:
        done = subprocess.run([*args], cwd=empty, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    where = run(
        str(python),
        "-c",
        "import importlib.util, langchain_smartrag as p; print(p.__file__, importlib.util.find_spec('training'))",
    )
    assert where.startswith(site) and where.strip().endswith("None")  # the wheel's copy; no top-level `training`
    assert run(str(python), "-c", readme_quick_start()).strip()
    smartrag = str(venv / "bin" / "smartrag")
    run(smartrag, "eval", "--dataset", "hotpotqa", "--limit", "3", "--output", "eval.json")
    assert json.loads((empty / "eval.json").read_text())["n"] == 3
    (empty / "rows.jsonl").write_text(
        json.dumps({"prompt": "Question: who?\nResponse:\n", "completion": "[Answer] me"})
    )
    out = run(
        smartrag,
        "train",
        "sft",
        "--config",
        "sft_embedded",
        "--data",
        "rows.jsonl",
        "--base-model",
        str(tiny_model_dir),
        "--max-steps",
        "2",
        "--no-bf16",
        "--output-dir",
        "sft",
    )
    assert out.strip().endswith("sft/final") and (empty / "sft" / "final").is_dir()


@pytest.mark.slow
def test_the_package_builds_without_warnings_and_passes_twine_check(tmp_path):
    """`python -m build` (sdist and wheel, no network: this environment's setuptools) prints no warning, `twine
    check` passes both, and the wheel carries what a pip user needs beside the code (`langgraph.json`, the adapter)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # else setuptools warns about it
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert not [line for line in (built.stdout + built.stderr).splitlines() if "warning" in line.lower()]
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "langchain_smartrag/langgraph.json" in names
    assert "langchain_smartrag/adapters/smartrag-smollm2-135m/adapter_model.safetensors" in names
