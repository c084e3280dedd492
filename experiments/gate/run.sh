#!/usr/bin/env bash
# The decision gate's run: paired train episodes, the fit, the dev table, the own index, the latency. Resumable
# (play_pairs.py appends and skips what it has). PAIRS=N stops the pairs at the first N questions of the mix.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/gate}
RESULTS=experiments/gate/results
mkdir -p "$OUT" "$RESULTS" benchmarks/results/own_index
if [ -z "${SKIP_PAIRS:-}" ]; then
  python experiments/gate/play_pairs.py --split train --out "$OUT/train-pairs.jsonl"
fi
smartrag train gate --fit-only --pairs "$OUT/train-pairs.jsonl" --output-dir "$OUT"
cp "$OUT/report.json" "$RESULTS/fit_report.json"
cp "$OUT/gate.json" "$RESULTS/gate.json"
cp "$OUT/gate.png" "$RESULTS/gate.png"
python experiments/gate/dev_table.py --gate "$OUT" --output "$RESULTS/dev_table.json"
python benchmarks/own_index.py --gate "$OUT" --decision gate --modes no-retrieval always-retrieve smartrag \
  --no-progress --output benchmarks/results/own_index/gate.json
python benchmarks/own_index.py --decision token --modes smartrag --no-progress \
  --output benchmarks/results/own_index/token.json
python experiments/gate/latency.py --gate "$OUT" | tee "$RESULTS/latency.txt"
