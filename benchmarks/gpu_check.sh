#!/usr/bin/env bash
# Serving, SFT and PPO speed on one CUDA GPU (benchmarks/gpu_check.py; exits 0 at once without one). `make install` first.
set -euo pipefail; cd "$(dirname "$0")/.." && make -s install >/dev/null && exec .venv/bin/python benchmarks/gpu_check.py "$@"
