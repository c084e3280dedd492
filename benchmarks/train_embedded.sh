#!/usr/bin/env bash
# The embedded model's whole training run: warm-up data -> SFT -> PPO -> SFT and PPO side by side on dev.
# Every stage skips work already done and SFT / PPO resume from their last checkpoints, so rerunning after an
# interruption continues. The configs are in training/configs/; outputs under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PER_DATASET=${PER_DATASET:-150}
PPO_CONFIG=${PPO_CONFIG:-training/configs/ppo_embedded.yaml}
mkdir -p runs
[ -f runs/warmup.jsonl ] || .venv/bin/smartrag train warmup --per-dataset "$PER_DATASET" --rewrites 2 --output runs/warmup.jsonl
resume=""; ls runs/sft-embedded/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d runs/sft-embedded/final ] || .venv/bin/smartrag train sft --config training/configs/sft_embedded.yaml $resume
ppo_dir=$(.venv/bin/python -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['output_dir'])" "$PPO_CONFIG")
resume=""; ls "$ppo_dir"/checkpoint-* >/dev/null 2>&1 && resume="--resume"
[ -d "$ppo_dir/final" ] || .venv/bin/smartrag train ppo --config "$PPO_CONFIG" $resume
.venv/bin/python benchmarks/compare.py SFT=runs/sft-embedded/final PPO="$ppo_dir/final" --n 128 --out runs/compare
