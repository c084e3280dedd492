#!/usr/bin/env bash
# The preview with --no-search-examples: questions nothing answers are labelled [Answer], so the warm-up holds the
# contrast a preview can show (titles that match -> search, titles that do not -> answer). Resumable; runs/preview-ns/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
R=runs/preview-ns
[ -f $R/warmup.jsonl ] || .venv/bin/smartrag train warmup --per-dataset 150 --rewrites 2 --preview 3 --no-search-examples --output $R/warmup.jsonl
echo "WARMUP done $(date)"
resume=""; ls $R/sft/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d $R/sft/final ] || .venv/bin/smartrag train sft --config sft_embedded --data $R/warmup.jsonl --output-dir $R/sft --no-bf16 --max-steps 60 $resume   # 60 of the recipe's 84: the recorded run
echo "SFT done $(date)"
.venv/bin/python experiments/preview/preview_policy.py --policy $R/sft/final --n 100 --out experiments/preview/results/preview_policy/no-search-examples
echo "EVAL done $(date)"
