"""The notebooks run top to bottom (with the tiny model: the parameter cell reads SMARTRAG_NOTEBOOK_MODEL)."""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("name", ["02_train.ipynb"])
def test_notebook_runs_top_to_bottom_with_the_tiny_model(name, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    )  # kernel = this venv
    monkeypatch.setenv("SMARTRAG_NOTEBOOK_MODEL", "tiny")
    monkeypatch.setenv("SMARTRAG_NOTEBOOK_RUN_DIR", str(tmp_path / "run"))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "before SFT" in outputs and "after SFT" in outputs and "loss" in outputs
    assert (tmp_path / "run" / "sft" / "final" / "adapter_config.json").exists()
    assert "after PPO" in outputs and "dev after 2 iterations" in outputs
    assert (tmp_path / "run" / "ppo" / "curves.png").exists() and (
        tmp_path / "run" / "ppo" / "final" / "value_head.pt"
    ).exists()
    assert "| oracle |" in outputs and (tmp_path / "run" / "ppo" / "final" / "gate.json").exists()


@pytest.mark.slow
def test_the_evaluation_notebook_runs_top_to_bottom_with_the_shipped_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SMARTRAG_NOTEBOOK_N", "8")
    notebook = nbformat.read(NOTEBOOKS / "01_evaluate.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "answer:" in outputs and "hotpotqa dev, n = 8, policy = embedded" in outputs
    assert "no-retrieval" in outputs and "policy decides (t = 0.5)" in outputs and "mean P(search)" in outputs
    images = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1  # the sweep drawn here (the committed full one is a file the text names)
