#!/usr/bin/env bash
# The embedded model's whole training run, as shipped: warm-up data -> SFT -> PPO -> export the selected adapter
# into the package -> the paper-shaped table on dev. Every stage skips work already done, SFT and PPO resume from
# their last checkpoints and reproduce.py reuses finished evaluations, so rerunning after an interruption
# continues. Configs: langchain_smartrag/training/configs/; outputs under runs/ (and the exported adapter in the package).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PER_DATASET=${PER_DATASET:-150}
PPO_CONFIG=${PPO_CONFIG:-langchain_smartrag/training/configs/smartrag_paired.yaml}
SHIPPED=langchain_smartrag/adapters/smartrag-smollm2-135m
mkdir -p runs
[ -f runs/warmup.jsonl ] || .venv/bin/smartrag train warmup --per-dataset "$PER_DATASET" --rewrites 2 --output runs/warmup.jsonl
resume=""; ls runs/sft-embedded/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-embedded/final ] || .venv/bin/smartrag train sft --config langchain_smartrag/training/configs/sft_embedded.yaml $resume
ppo_dir=$(.venv/bin/python -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['output_dir'])" "$PPO_CONFIG")
resume=""; ls "$ppo_dir"/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d "$ppo_dir/final" ] || .venv/bin/smartrag train ppo --config "$PPO_CONFIG" $resume
.venv/bin/smartrag train export "$ppo_dir/best" --output "$SHIPPED"
.venv/bin/python benchmarks/reproduce.py --sft runs/sft-embedded/final --smartrag "$SHIPPED"
