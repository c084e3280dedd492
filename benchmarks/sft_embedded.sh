#!/usr/bin/env bash
# Warm-up -> SFT -> before/after evaluation of the embedded model. Every stage skips work already done and SFT
# resumes from its last checkpoint, so rerunning after an interruption continues. Outputs under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PER_DATASET=${PER_DATASET:-150}
EVAL_N=${EVAL_N:-100}
mkdir -p runs
[ -f runs/warmup.jsonl ] || .venv/bin/smartrag train warmup --per-dataset "$PER_DATASET" --rewrites 2 --output runs/warmup.jsonl
resume=""; ls runs/sft-embedded/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-embedded/final ] || .venv/bin/smartrag train sft --data runs/warmup.jsonl --output-dir runs/sft-embedded \
    --learning-rate 3e-4 --batch-size 8 --epochs 2 --save-every 10 --log-every 2 $resume
for ds in hotpotqa; do
  [ -f "runs/eval-before-$ds.json" ] || .venv/bin/smartrag eval --dataset "$ds" --limit "$EVAL_N" --mode smartrag \
      --check-format --output "runs/eval-before-$ds.json"
  [ -f "runs/eval-after-$ds.json" ] || .venv/bin/smartrag eval --dataset "$ds" --limit "$EVAL_N" --mode smartrag \
      --check-format --policy runs/sft-embedded/final --output "runs/eval-after-$ds.json"
done
