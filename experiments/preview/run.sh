#!/usr/bin/env bash
# A preview-trained policy at small scale (issue #11): warm-up with --preview 3, SFT with the shipped recipe,
# then every baseline on the same dev questions. Resumable; outputs under runs/preview/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
R=runs/preview
[ -f $R/warmup.jsonl ] || .venv/bin/smartrag train warmup --per-dataset 150 --rewrites 2 --preview 3 --output $R/warmup.jsonl
resume=""; ls $R/sft/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d $R/sft/final ] || .venv/bin/smartrag train sft --config sft_embedded --data $R/warmup.jsonl --output-dir $R/sft --no-bf16 $resume
.venv/bin/python experiments/preview/preview_rules.py
.venv/bin/python experiments/preview/preview_policy.py --policy $R/sft/final --n 100
