"""The notebooks run from an installed package in any folder: no path climbs out of the notebook's own folder, and
the data they read comes through the package (`langchain_smartrag.training.dataset_path`, the bundled corpus). That
they run top to bottom is `tests/integration_tests/test_notebooks.py`."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_a_notebook_reads_and_writes_only_under_its_own_folder(notebook):
    code = "\n".join(
        "".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"
    )
    assert NOTEBOOKS and '".."' not in code and "../" not in code and "..\\\\" not in code
    assert "benchmarks/" not in code and "shared/data" not in code  # a checkout's folders, not the package's
