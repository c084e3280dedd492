#!/usr/bin/env bash
# Issue 34's runs: the warm-up with reading rows, SFT on it (resumable), then the reading benchmark (base, shipped,
# new) and the closed-book check on every dev set. Outputs under runs/; results under experiments/reading/results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
mkdir -p runs/reading experiments/reading/results
[ -f runs/reading/warmup.jsonl ] || smartrag train warmup --per-dataset 150 --rewrites 2 --reading-per-dataset 250 \
  --output runs/reading/warmup.jsonl
resume=""; ls runs/sft-reading/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-reading/final ] || smartrag train sft --config experiments/reading/configs/sft_reading.yaml $resume
cp runs/reading/warmup.report.json experiments/reading/results/warmup.report.json
python benchmarks/reading.py --n 50 --policies embedded-base embedded runs/sft-reading/final \
  --output experiments/reading/results/reading_n50.json
python experiments/reading/closed_book.py --policies embedded runs/sft-reading/final --n 150 \
  --output experiments/reading/results/closed_book.json
# The second run: the reading rows alone, trained on from the shipped adapter (configs/sft_reading_from_shipped.yaml).
resume=""; ls runs/sft-reading-from-shipped/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-reading-from-shipped/final ] || smartrag train sft \
  --config experiments/reading/configs/sft_reading_from_shipped.yaml $resume
python benchmarks/reading.py --n 50 --policies runs/sft-reading-from-shipped/final \
  --output experiments/reading/results/reading_from_shipped_n50.json
python experiments/reading/closed_book.py --policies embedded runs/sft-reading-from-shipped/final --n 150 \
  --output experiments/reading/results/closed_book_from_shipped.json
# The third run: as the second, with the action word given, not trained (configs/sft_reading_given.yaml).
[ -f runs/reading/warmup_given.jsonl ] || python experiments/reading/given_action.py runs/reading/warmup.jsonl \
  runs/reading/warmup_given.jsonl
resume=""; ls runs/sft-reading-given/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-reading-given/final ] || smartrag train sft --config experiments/reading/configs/sft_reading_given.yaml $resume
python experiments/reading/closed_book.py --policies runs/sft-reading-given/final --n 150 \
  --output experiments/reading/results/closed_book_given.json
python benchmarks/reading.py --n 50 --policies runs/sft-reading-given/final \
  --output experiments/reading/results/reading_given_n50.json
