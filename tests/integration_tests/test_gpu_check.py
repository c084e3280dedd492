"""benchmarks/gpu_check.py on a machine without CUDA: it says so and exits 0, having measured nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the check measures for minutes")
def test_the_gpu_check_exits_cleanly_without_cuda(tmp_path):
    output = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "no CUDA device, nothing measured" in done.stdout
    assert not output.exists()
